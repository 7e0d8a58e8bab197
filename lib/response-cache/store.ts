// The response cache's view of the cache toolkit: entries with their metadata, tags, and the
// locks that coalesce misses across instances. Everything lives in one cache namespace.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Cache, CacheEntry } from '../cache/index.js'
import { flushWrites } from '../core/index.js'
import type { ResponseEntry } from './http.js'

export interface Lookup {
  /** 'stale': past the entry's ttl, inside the longer of its stale-while-revalidate and stale-if-error windows. */
  state: 'fresh' | 'stale' | 'miss'
  entry?: ResponseEntry
  /** Milliseconds since the entry was stored, by the Redis clock. */
  age?: number
  /** Redis time of the read; a value computed after it is written with `since`, so an invalidation in between wins. */
  readAt?: string
}

interface EntryHead { s: number, h: Record<string, string>, e: string, t: number, g?: readonly string[] }

// An entry is one Buffer (stored as raw bytes by the codec, no base64 or JSON of the body):
// a JSON line with status, headers, ETag and time, then the body.
function encodeEntry (entry: ResponseEntry): Buffer {
  const head: EntryHead = { s: entry.status, h: entry.headers, e: entry.etag, t: entry.storedAt }
  if (entry.tags.length > 0) head.g = entry.tags
  return Buffer.concat([Buffer.from(JSON.stringify(head) + '\n'), entry.body])
}

function decodeEntry (bytes: unknown): ResponseEntry | undefined {
  if (!Buffer.isBuffer(bytes)) return undefined
  const nl = bytes.indexOf(0x0a)
  if (nl < 0) return undefined
  try {
    const head = JSON.parse(bytes.toString('utf8', 0, nl)) as EntryHead
    return { status: head.s, headers: head.h, etag: head.e, storedAt: head.t, tags: head.g ?? [], body: bytes.subarray(nl + 1) }
  } catch {
    return undefined
  }
}

// Entries decoded from the local tier's copies: a copy is the same Buffer at every hit, so it
// is decoded once.
const decodedCopies = new WeakMap<Buffer, ResponseEntry | undefined>()

function decodeCopy (bytes: Buffer): ResponseEntry | undefined {
  if (decodedCopies.has(bytes)) return decodedCopies.get(bytes)
  const entry = decodeEntry(bytes)
  decodedCopies.set(bytes, entry)
  return entry
}

function lookupOf (read: Exclude<CacheEntry<Buffer>, { state: 'error' }>, copy = false): Lookup {
  if (read.state === 'miss') return { state: 'miss', readAt: read.readAt }
  const entry = copy ? decodeCopy(read.value) : decodeEntry(read.value)
  return entry === undefined ? { state: 'miss', readAt: read.readAt } : { state: read.state, readAt: read.readAt, entry, age: read.age }
}

/** Tag that every entry of one path carries, so that one path's variants drop together. */
export function urlTag (path: string): string {
  return `url:${path}`
}

export class ResponseStore {
  readonly #cache: Cache
  // Lookups of one key that arrive before its read is sent share that read; the reads of one
  // event-loop turn go out at its end. A lookup never joins a read already sent: that read may
  // run before an invalidation that answered before this lookup began.
  #queued = new Map<string, Promise<Lookup>>()
  #turn: Promise<void> | undefined

  constructor (cache: Cache) {
    this.#cache = cache
  }

  /** The key prefix of the suite, for diagnostics events. */
  get prefix (): string {
    return this.#cache.core.keyspace.prefix
  }

  /**
   * Reads an entry. Rejects when Redis failed (the caller answers BYPASS). `fresh` asks for a
   * read of its own from Redis, sent now; `local` lets the cache toolkit's local tier answer
   * (and keep what Redis answers).
   */
  get (key: string, fresh = false, local = false): Promise<Lookup> {
    if (fresh) return this.#read(key, false)
    if (local) {
      const held = this.#cache.localEntry<Buffer>(key)
      if (held !== undefined && held.state !== 'error') return Promise.resolve(lookupOf(held, true))
    }
    const queueKey = local ? 'l' + key : 'r' + key
    let pending = this.#queued.get(queueKey)
    if (pending === undefined) {
      pending = this.#turnEnd().then(() => this.#read(key, local))
      this.#queued.set(queueKey, pending)
    }
    return pending
  }

  // Resolves at the end of this turn, when the queued lookups are handed to Redis together.
  #turnEnd (): Promise<void> {
    this.#turn ??= new Promise<void>((resolve) => {
      setImmediate(() => {
        this.#turn = undefined
        this.#queued = new Map()
        resolve()
        // From setImmediate a write held for the end of the turn would wait one more turn.
        queueMicrotask(() => flushWrites(this.#cache.core.client))
      })
    })
    return this.#turn
  }

  async #read (key: string, local: boolean): Promise<Lookup> {
    const read = await this.#cache.getEntry<Buffer>(key, { local })
    if (read.state === 'error') throw read.error
    return lookupOf(read)
  }

  async set (key: string, path: string, entry: ResponseEntry, opts: { ttl: number, grace: number, tags: string[], since?: string }): Promise<void> {
    await this.#cache.setEntry(key, encodeEntry(entry), { ttl: opts.ttl, grace: opts.grace, tags: [...opts.tags, urlTag(path)], since: opts.since })
  }

  /**
   * Takes the fill lock of `key`, or waits up to `wait` for the instance that holds it to store
   * the entry: a release function, `'filled'` when the entry appeared, or null when the wait
   * ran out (the caller then runs the handler itself). A holder that ends without storing an
   * entry frees the lock, and the next poll takes it.
   */
  async lockOrWait (key: string, ttl: number, wait: number): Promise<(() => Promise<void>) | 'filled' | null> {
    const deadline = Date.now() + wait
    const take = (): ReturnType<Cache['lock']> => this.#cache.lock(`fill|${key}`, { ttl })
    let lock = await take()
    while (lock === null) {
      // Wait for the holder's entry; when it is not there yet, try the lock again.
      if (Date.now() >= deadline) return null
      await sleep(25)
      const found = await this.get(key).catch(() => undefined)
      if (found?.state === 'fresh') return 'filled'
      lock = await take()
    }
    const held = lock
    // The previous holder may have stored the entry between our read and our lock. A read of
    // our own: one shared with lookups that began before the lock could be older than it.
    const again = await this.#read(key, false).catch(() => undefined)
    if (again?.state !== 'fresh') return async () => { await held.release() }
    await held.release()
    return 'filled'
  }

  /** The Redis clock in µs, as `readAt` is: the basis of a value computed without a read. */
  async now (): Promise<string> {
    // On a Cluster any node answers: their clocks are assumed in step (NTP), as the generation
    // records and the entries already assume. Rounded down to the millisecond.
    return String((await this.#cache.core.client.frsTime()) * 1000)
  }

  /**
   * One attempt at the refresh lock of `key` (for a background refresh): a release function,
   * or null when another instance holds it or the entry is fresh again, since a refresh may
   * have finished between the caller's read and this lock.
   */
  async lockToRefresh (key: string, ttl: number): Promise<(() => Promise<void>) | null> {
    const lock = await this.#cache.lock(`refresh|${key}`, { ttl })
    if (lock === null) return null
    const again = await this.#read(key, false).catch(() => undefined)
    if (again?.state === 'fresh') {
      await lock.release()
      return null
    }
    return async () => { await lock.release() }
  }

  async invalidateTags (tags: string[]): Promise<void> {
    await this.#cache.invalidateTags(tags)
  }

  async invalidateUrl (path: string): Promise<void> {
    await this.#cache.invalidateTags([urlTag(path)])
  }
}
