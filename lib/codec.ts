import { brotliCompressSync, brotliDecompressSync, constants as zlib, deflateRawSync, inflateRawSync } from 'node:zlib'
import { CacheCorruptValueError, CacheUndefinedValueError, CacheUnserializableError } from './errors.js'

// Bytes of a value under our key: a one-byte format header, then the payload.
// A counter is the exception: a bare decimal integer with no header, so that INCR works on it.
// Every header is a letter, never a digit or '-', so a counter is told apart without ambiguity.
const PLAIN_JSON = 0x70 // 'p': JSON with no special types, parsed without a reviver
const TAGGED_JSON = 0x74 // 't': JSON in which Date, Buffer, BigInt, Map, Set, … are tagged objects
const STRING = 0x73 // 's': a top-level string, UTF-8
const BYTES = 0x62 // 'b': a top-level Buffer, as is
const DEFLATE = 0x7a // 'z': the next byte is the inner format, then deflate-raw of its payload
const BROTLI = 0x79 // 'y': the same with brotli

const INTEGER = /^-?(?:0|[1-9]\d*)$/

export interface CodecOptions {
  /** Payloads of at least this many bytes are compressed; `false` never compresses. @default 1024 */
  compressThreshold?: number | false
  /** The compression used for new values (both are always readable). @default 'deflate' */
  compression?: 'deflate' | 'brotli'
}

/** Turns values into bytes and back. Values round-trip exactly; foreign bytes throw CacheCorruptValueError. */
export class Codec {
  readonly #threshold: number
  readonly #brotli: boolean

  constructor (opts: CodecOptions = {}) {
    this.#threshold = opts.compressThreshold === false ? Infinity : opts.compressThreshold ?? 1024
    this.#brotli = opts.compression === 'brotli'
  }

  /**
   * The bytes to store. A safe integer becomes a bare decimal (a counter) when `bareIntegers`.
   * Throws FRS_CACHE_UNDEFINED for `undefined`, FRS_CACHE_UNSERIALIZABLE for functions and symbols.
   */
  encode (value: unknown, bareIntegers = true): Buffer {
    if (value === undefined) throw new CacheUndefinedValueError()
    if (bareIntegers && typeof value === 'number' && Number.isSafeInteger(value) && !Object.is(value, -0)) return Buffer.from(String(value))
    let format: number
    let payload: Buffer
    if (typeof value === 'string') {
      format = STRING
      payload = Buffer.from(value)
    } else if (Buffer.isBuffer(value)) {
      format = BYTES
      payload = value
    } else {
      const state = { tagged: false }
      const text = JSON.stringify(value, replacer(state))
      format = state.tagged ? TAGGED_JSON : PLAIN_JSON
      payload = Buffer.from(text)
    }
    if (payload.length < this.#threshold) return Buffer.concat([Buffer.of(format), payload])
    const packed = this.#brotli
      ? brotliCompressSync(payload, { params: { [zlib.BROTLI_PARAM_QUALITY]: 4, [zlib.BROTLI_PARAM_SIZE_HINT]: payload.length } })
      : deflateRawSync(payload)
    return Buffer.concat([Buffer.of(this.#brotli ? BROTLI : DEFLATE, format), packed])
  }

  /** The value of stored bytes. Throws CacheCorruptValueError for bytes this codec did not write. */
  decode (bytes: Buffer): unknown {
    try {
      return decodeBytes(bytes)
    } catch (err) {
      if (err instanceof CacheCorruptValueError) throw err
      throw new CacheCorruptValueError((err as Error).message, { cause: err })
    }
  }
}

function decodeBytes (bytes: Buffer): unknown {
  if (bytes.length === 0) throw new CacheCorruptValueError('empty value')
  const head = bytes[0] as number
  if (head === 0x2d || (head >= 0x30 && head <= 0x39)) {
    const text = bytes.toString('latin1')
    if (!INTEGER.test(text)) throw new CacheCorruptValueError('not an integer')
    const n = Number(text)
    return Number.isSafeInteger(n) ? n : BigInt(text)
  }
  if (head === DEFLATE || head === BROTLI) {
    const inner = bytes[1]
    if (inner === undefined || inner === DEFLATE || inner === BROTLI) throw new CacheCorruptValueError('bad compressed header')
    const body = bytes.subarray(2)
    return decodePayload(inner, head === DEFLATE ? inflateRawSync(body) : brotliDecompressSync(body))
  }
  return decodePayload(head, bytes.subarray(1))
}

function decodePayload (format: number, payload: Buffer): unknown {
  switch (format) {
    case PLAIN_JSON: return JSON.parse(payload.toString())
    case TAGGED_JSON: return JSON.parse(payload.toString(), reviver)
    case STRING: return payload.toString()
    case BYTES: return Buffer.from(payload)
    default: throw new CacheCorruptValueError(`unknown format byte 0x${format.toString(16)}`)
  }
}

// Tagged values are objects `{ "$t": kind, "v": data }`; a user's object that has a "$t"
// key is itself wrapped (kind "O", its entries as pairs), so no user data is mistaken for a tag.
function replacer (state: { tagged: boolean }) {
  return function (this: Record<string, unknown>, key: string, v: unknown): unknown {
    const raw = this[key]
    switch (typeof raw) {
      case 'bigint': state.tagged = true; return { $t: 'N', v: raw.toString() }
      case 'number':
        if (Number.isFinite(raw) && !Object.is(raw, -0)) return v
        state.tagged = true
        return { $t: 'F', v: Object.is(raw, -0) ? '-0' : String(raw) }
      case 'function': case 'symbol': throw new CacheUnserializableError(`a ${typeof raw}${key === '' ? '' : ` at "${key}"`}`)
      case 'object':
        if (raw === null) return v
        if (raw instanceof Date) { state.tagged = true; return { $t: 'D', v: raw.getTime() } }
        if (Buffer.isBuffer(raw)) { state.tagged = true; return { $t: 'B', v: raw.toString('base64') } }
        if (raw instanceof Map) { state.tagged = true; return { $t: 'M', v: [...raw] } }
        if (raw instanceof Set) { state.tagged = true; return { $t: 'S', v: [...raw] } }
        if (Object.hasOwn(raw, '$t')) { state.tagged = true; return { $t: 'O', v: Object.entries(v as object) } }
        return v
      default: return v
    }
  }
}

function reviver (_key: string, v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
  const tag = (v as { $t?: unknown }).$t
  if (typeof tag !== 'string') return v
  const data = (v as { v: unknown }).v
  switch (tag) {
    case 'N': return BigInt(data as string)
    case 'F': return data === '-0' ? -0 : Number(data)
    case 'D': return new Date(data as number)
    case 'B': return Buffer.from(data as string, 'base64')
    case 'M': return new Map(data as Array<[unknown, unknown]>)
    case 'S': return new Set(data as unknown[])
    case 'O': return Object.fromEntries(data as Array<[string, unknown]>)
    default: throw new CacheCorruptValueError(`unknown tag "${tag}"`)
  }
}
