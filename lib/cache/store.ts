import type { ChainableCommander, Cluster, Redis } from 'ioredis'
import { CacheCorruptValueError, defineScripts, DROP_ALL, isCluster } from '../core/index.js'
import { cacheScripts } from './scripts.js'

type DecodeError = InstanceType<typeof CacheCorruptValueError>

/** The metadata of an entry, as its header holds it (see lib/cache/scripts.ts). */
export interface EntryMeta {
  /** Redis time (ms) of the write. */
  storedAt: number
  /** Fresh lifetime, ms. */
  ttl: number
  /** How long past `ttl` the entry may still be served stale, ms. */
  grace: number
  /** Redis time (µs, decimal) before the value was computed; invalidations after it win. */
  basis: string
  /** Generation keys (namespaces, tags) the entry depends on. */
  gens: string[]
}

/** One key as read: its codec bytes and metadata (null for a bare counter). */
export interface StoredItem {
  payload: Buffer
  meta: EntryMeta | null
  /** Milliseconds until Redis drops the key; -1 without a TTL. */
  pttl: number
}

export interface ReadResult {
  /** Redis time (µs, decimal) of the read: the basis for a value computed after it. */
  now: string
  /** Per key: the item, `null` for a miss or an invalidated entry, or the decode error. */
  items: Array<StoredItem | null | DecodeError>
}

/** Where a store publishes its changes, and the origin that names its instance's messages. */
export interface Invalidations { channel: string, origin: string }

export interface WriteOptions { ttl: number, grace: number, basis: string, gens: readonly string[], nx: boolean, maxTtl: number }

const NEWLINE = 0x0a
const HEADER = 0x46 // 'F'
const OLD_HEADER = 0x45 // 'E': an entry of the old key layout, which reads as invalid (lib/cache/scripts.ts)

/**
 * Splits an entry into header and payload; null for an entry of the old layout. Throws
 * CacheCorruptValueError for a malformed header.
 */
export function parseItem (raw: Buffer, pttl: number): StoredItem | null {
  if (raw[0] === OLD_HEADER) return null
  if (raw[0] !== HEADER) return { payload: raw, meta: null, pttl }
  const nl = raw.indexOf(NEWLINE)
  const fields = nl < 0 ? [] : raw.toString('latin1', 1, nl).split(' ')
  const [storedAt, ttl, grace, basis] = fields.slice(0, 4).map((f) => Number(f))
  if (fields.length < 4 || !Number.isSafeInteger(storedAt) || !Number.isSafeInteger(ttl) || !Number.isSafeInteger(grace) || !Number.isSafeInteger(basis)) {
    throw new CacheCorruptValueError('malformed entry header')
  }
  return { payload: raw.subarray(nl + 1), meta: { storedAt: storedAt as number, ttl: ttl as number, grace: grace as number, basis: fields[3] as string, gens: fields.slice(4) }, pttl }
}

/**
 * The Redis side of the cache: reads entries together with their generations, writes
 * entries, bumps generations. On a standalone server (or Sentinel) each call is one script,
 * one round trip. On a Cluster the generation keys live on one slot and entries on others,
 * so a read is two round trips: the entries, then their generations.
 */
export class CacheStore {
  readonly #client: Redis | Cluster
  readonly #cluster: boolean
  readonly #notify: Invalidations | undefined

  /** With `notify`, every change is published on its channel (for the local tiers of every instance). */
  constructor (client: Redis | Cluster, notify?: Invalidations) {
    this.#client = client
    defineScripts(client, cacheScripts)
    this.#cluster = isCluster(client)
    this.#notify = notify
  }

  // Sends one command and, with notify, the PUBLISH of each changed key right behind it on the
  // same connection (one round trip; the key is changed before any instance hears of it).
  async #changing<T> (keys: readonly string[], command: (p: ChainableCommander) => void, alone: () => Promise<T>): Promise<T> {
    const notify = this.#notify
    if (notify === undefined) return await alone()
    const pipeline = this.#client.pipeline()
    command(pipeline)
    for (const key of keys) pipeline.publish(notify.channel, `${notify.origin} ${key}`)
    const replies = await pipeline.exec()
    const failed = replies?.find(([err]) => err !== null)
    if (replies === null || failed !== undefined) throw failed?.[0] ?? new Error('pipeline was aborted')
    return replies[0]?.[1] as T
  }

  /** Tells every instance that everything may have changed (a deletePattern ran). */
  async changedAll (): Promise<void> {
    if (this.#notify !== undefined) await this.#client.publish(this.#notify.channel, `${this.#notify.origin} ${DROP_ALL}`)
  }

  /**
   * Reads `keys`. On a Cluster `knownGens` (non-empty, one hash tag) are read alongside the
   * entries; they also give the Redis time, so that a miss learns it too.
   */
  read (keys: readonly string[], knownGens: readonly string[]): Promise<ReadResult> {
    if (this.#cluster) return this.#readCluster(keys, knownGens)
    return this.#client.frsCacheGetBuffer(keys.length, ...keys).then((reply) => {
      const items: ReadResult['items'] = []
      for (let i = 0; i < keys.length; i++) {
        const raw = reply[1 + i * 3] as Buffer | null
        if (raw === null || reply[3 + i * 3] === 1) items.push(null)
        else items.push(safeParse(raw, reply[2 + i * 3] as number))
      }
      return { now: String(reply[0]), items }
    })
  }

  // The entries and the generations we can name in advance (the namespace's, and tags the
  // caller expects) are read in parallel: one round trip of latency. Generations named only
  // inside an entry cost a second one.
  async #readCluster (keys: readonly string[], knownGens: readonly string[]): Promise<ReadResult> {
    const client = this.#client
    const gensRead = client.frsCacheGens(knownGens.length, ...knownGens)
    gensRead.catch(() => {}) // awaited below; do not let it reject unobserved when the entries fail first
    const replies = await Promise.all(keys.map(async (key) => {
      const res = await client.pipeline().getBuffer(key).pttl(key).exec()
      const failed = res?.find(([err]) => err !== null)
      if (res === null || failed !== undefined) throw failed?.[0] ?? new Error('pipeline was aborted')
      return [res[0]?.[1], res[1]?.[1]] as [Buffer | null, number]
    }))
    const items: ReadResult['items'] = replies.map(([raw, pttl]) => raw === null ? null : safeParse(raw, pttl))
    const first = await gensRead
    const value = new Map(knownGens.map((g, i) => [g, Number(first[i + 1] ?? 0)]))
    const more = new Set<string>()
    for (const item of items) {
      if (item !== null && !(item instanceof Error) && item.meta !== null) for (const g of item.meta.gens) if (!value.has(g)) more.add(g)
    }
    if (more.size > 0) {
      const list = [...more]
      const reply = await client.frsCacheGens(list.length, ...list)
      list.forEach((g, i) => value.set(g, Number(reply[i + 1] ?? 0)))
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i]
      if (item === null || item === undefined || item instanceof Error || item.meta === null) continue
      const basis = Number(item.meta.basis)
      if (item.meta.gens.some((g) => (value.get(g) ?? 0) >= basis)) items[i] = null
    }
    return { now: String(first[0]), items }
  }

  /** Writes one payload per key with one header; returns how many were written. */
  async write (keys: readonly string[], payloads: readonly Buffer[], opts: WriteOptions): Promise<number> {
    if (opts.nx && this.#cluster) return this.#addCluster(keys, payloads, opts)
    const args = [opts.ttl, opts.grace, opts.basis, opts.gens.join(' '), opts.nx ? 'NX' : '', opts.maxTtl]
    if (!this.#cluster || keys.length === 1) return this.#set(keys, [...args, ...payloads])
    const counts = await Promise.all(keys.map((key, i) => this.#set([key], [...args, payloads[i] as Buffer])))
    return counts.reduce((a, b) => a + b, 0)
  }

  #set (keys: readonly string[], args: Array<string | number | Buffer>): Promise<number> {
    return this.#changing(keys, (p) => p.frsCacheSet(keys.length, ...keys, ...args), () => this.#client.frsCacheSet(keys.length, ...keys, ...args))
  }

  // A script on the entry's node cannot read generations on another node: read first, then
  // write where the read found nothing valid and nothing newer was written since.
  async #addCluster (keys: readonly string[], payloads: readonly Buffer[], opts: WriteOptions): Promise<number> {
    const read = await this.read(keys, opts.gens)
    const args = [opts.ttl, opts.grace, opts.basis, opts.gens.join(' '), 'B' + read.now, opts.maxTtl]
    const counts = await Promise.all(keys.map((key, i) => {
      const item = read.items[i]
      if (item !== null && !(item instanceof Error)) return 0
      return this.#set([key], [...args, payloads[i] as Buffer])
    }))
    return counts.reduce((a, b) => a + b, 0)
  }

  /**
   * Marks every entry that depends on `gens` invalid; all of them must share one hash tag.
   * The records live maxTtl, the longest any entry lives past its basis, plus a margin for
   * the clocks of a Cluster's nodes (entries are capped by their own node's clock).
   */
  async bump (gens: readonly string[], maxTtl: number): Promise<void> {
    const keep = maxTtl + Math.min(60_000, Math.ceil(maxTtl / 10))
    await this.#changing(gens, (p) => p.frsCacheBump(gens.length, ...gens, keep), () => this.#client.frsCacheBump(gens.length, ...gens, keep))
  }

  /** Deletes keys; returns how many existed. */
  async delete (keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0
    if (!this.#cluster || keys.length === 1) return this.#unlink(keys)
    const counts = await Promise.all(keys.map((key) => this.#unlink([key])))
    return counts.reduce((a, b) => a + b, 0)
  }

  #unlink (keys: readonly string[]): Promise<number> {
    return this.#changing(keys, (p) => p.unlink(...keys), () => this.#client.unlink(...keys))
  }

  /**
   * TTL operations that account for an entry's grace (see frsCacheExpire). Only `expire` can
   * shorten a lifetime, so only it is published (a copy in memory never outlives the TTL it
   * was read with).
   */
  expire (key: string, mode: 'ttl' | 'expire' | 'touch' | 'persist', ms: number | '', fallbackMs: number, maxTtl: number): Promise<number> {
    const alone = (): Promise<number> => this.#client.frsCacheExpire(key, mode, ms, fallbackMs, maxTtl)
    if (mode !== 'expire') return alone()
    return this.#changing([key], (p) => p.frsCacheExpire(key, mode, ms, fallbackMs, maxTtl), alone)
  }
}

function safeParse (raw: Buffer, pttl: number): StoredItem | null | DecodeError {
  try {
    return parseItem(raw, pttl)
  } catch (err) {
    return err as DecodeError
  }
}
