import { brotliCompressSync, brotliDecompressSync, constants as zlib, deflateRawSync, inflateRawSync } from 'node:zlib'
import { CacheCorruptValueError, CacheUndefinedValueError, CacheUnserializableError } from './errors.js'

// Bytes of a value under our key: a one-byte format header, then the payload.
// A counter is the exception: a bare decimal integer with no header, so that INCR works on it.
// Every header is a letter, never a digit or '-', so a counter is told apart without ambiguity.
const PLAIN_JSON = 0x70 // 'p': JSON with no special types, parsed without a reviver
const TAGGED_JSON = 0x74 // 't': the paths of tagged values (Date, Buffer, BigInt, Map, Set, …), '\n', then JSON
const STRING = 0x73 // 's': a top-level string, UTF-8
const BYTES = 0x62 // 'b': a top-level Buffer, as is
const DEFLATE = 0x7a // 'z': the next byte is the inner format, then deflate-raw of its payload
const BROTLI = 0x79 // 'y': the same with brotli

const INTEGER = /^-?(?:0|[1-9]\d*)$/
// With the u flag a surrogate pair is one code point: only a lone surrogate is in category Cs.
const LONE_SURROGATE = /\p{Cs}/u

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
    // A string with a lone surrogate has no UTF-8 form (it would come back with U+FFFD): JSON
    // escapes it as \uXXXX, so it goes the JSON way and round-trips.
    if (typeof value === 'string' && !LONE_SURROGATE.test(value)) {
      format = STRING
      payload = Buffer.from(value)
    } else if (Buffer.isBuffer(value)) {
      format = BYTES
      payload = value
    } else {
      const paths: Path[] = []
      const plain = toPlain(value, [], paths)
      format = paths.length > 0 ? TAGGED_JSON : PLAIN_JSON
      payload = Buffer.from(paths.length > 0 ? JSON.stringify(paths) + '\n' + JSON.stringify(plain) : JSON.stringify(plain))
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
    case TAGGED_JSON: return parseTagged(payload.toString())
    case STRING: return payload.toString()
    case BYTES: return Buffer.from(payload)
    default: throw new CacheCorruptValueError(`unknown format byte 0x${format.toString(16)}`)
  }
}

// Special values become tag objects `{ "$t": kind, "v": data }` in an otherwise plain JSON
// tree, and the format 't' payload starts with the JSON list of their paths (innermost first),
// then a newline, then the tree: decoding is a plain JSON.parse plus one fix-up per tag,
// several times faster than a reviver that visits every node. A user's object that has a
// "$t" key is itself wrapped (kind "O", its entries as pairs), so that no data is mistaken for a tag.
type Path = Array<string | number>

function tag (t: string, v: unknown, path: Path, paths: Path[]): object {
  paths.push(path)
  return { $t: t, v }
}

/** A JSON-safe copy of `value`; every tag's path is pushed to `paths` after its children's. */
function toPlain (value: unknown, path: Path, paths: Path[]): unknown {
  switch (typeof value) {
    case 'string': case 'boolean': return value
    case 'number': return Number.isFinite(value) && !Object.is(value, -0) ? value : tag('F', Object.is(value, -0) ? '-0' : String(value), path, paths)
    case 'bigint': return tag('N', value.toString(), path, paths)
    case 'undefined': return undefined
    case 'function': case 'symbol': throw new CacheUnserializableError(`a ${typeof value}${path.length === 0 ? '' : ` at "${path.join('.')}"`}`)
  }
  if (value === null) return null
  const obj = value as Record<string, unknown>
  if (Array.isArray(obj)) return obj.map((v, i) => toPlain(v, [...path, i], paths) ?? null)
  if (obj instanceof Date) return tag('D', Number.isNaN(obj.getTime()) ? null : obj.getTime(), path, paths)
  if (Buffer.isBuffer(obj)) return tag('B', obj.toString('base64'), path, paths)
  if (obj instanceof Map) return tag('M', [...obj].map(([k, v], i) => [toPlain(k, [...path, 'v', i, 0], paths), toPlain(v, [...path, 'v', i, 1], paths) ?? null]), path, paths)
  if (obj instanceof Set) return tag('S', [...obj].map((v, i) => toPlain(v, [...path, 'v', i], paths) ?? null), path, paths)
  if (typeof obj.toJSON === 'function') return toPlain(obj.toJSON(), path, paths)
  if (Object.hasOwn(obj, '$t')) {
    const pairs = Object.entries(obj).filter(([, v]) => v !== undefined).map(([k, v], i) => [k, toPlain(v, [...path, 'v', i, 1], paths) ?? null])
    return tag('O', pairs, path, paths)
  }
  // No prototype, so that an own "__proto__" key is an ordinary property (on a plain object
  // the assignment would set the prototype, and JSON.stringify would drop the key).
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (const key of Object.keys(obj)) {
    const v = toPlain(obj[key], [...path, key], paths)
    if (v !== undefined) out[key] = v
  }
  return out
}

function revive (t: { $t: unknown, v: unknown }): unknown {
  const data = t.v
  switch (t.$t) {
    case 'N': return BigInt(data as string)
    case 'F': return data === '-0' ? -0 : Number(data)
    case 'D': return new Date(data === null ? NaN : data as number)
    case 'B': return Buffer.from(data as string, 'base64')
    case 'M': return new Map(data as Array<[unknown, unknown]>)
    case 'S': return new Set(data as unknown[])
    case 'O': return Object.fromEntries(data as Array<[string, unknown]>)
    default: throw new CacheCorruptValueError(`unknown tag "${String(t.$t)}"`)
  }
}

function parseTagged (text: string): unknown {
  const nl = text.indexOf('\n')
  if (nl < 0) throw new CacheCorruptValueError('no tag list')
  const paths = JSON.parse(text.slice(0, nl)) as Path[]
  let root = JSON.parse(text.slice(nl + 1)) as unknown
  if (!Array.isArray(paths)) throw new CacheCorruptValueError('bad tag list')
  for (const path of paths) {
    if (!Array.isArray(path) || path.length === 0) {
      root = revive(root as { $t: unknown, v: unknown })
      continue
    }
    let parent = root as Record<string | number, unknown>
    for (let i = 0; i < path.length - 1; i++) parent = parent[path[i] as string] as Record<string | number, unknown>
    const last = path[path.length - 1] as string | number
    parent[last] = revive(parent[last] as { $t: unknown, v: unknown })
  }
  return root
}
