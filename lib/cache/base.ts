import type { Cluster, Redis } from 'ioredis'
import { CacheStats } from './stats.js'
import type { NamespaceStats } from './stats.js'
import { entryLifetime, resolveCacheOptions } from './options.js'
import type { CacheOptions, ResolvedCacheOptions } from './options.js'
import { CacheStore } from './store.js'
import type { StoredItem } from './store.js'
import { channels, CircuitBreaker, Codec, InvalidOptionError, isCluster, Keyspace, LocalTier, SingleFlight } from '../core/index.js'
import type { Duration, WarnLogger } from '../core/index.js'
import type { BufferedCounter } from './counter.js'

/** How long a value lives: `ttl` fresh, then `grace` stale; `tags` let `invalidateTags()` reach it. */
export interface EntryOptions {
  /** Fresh lifetime. @default the cache's `ttl` */
  ttl?: Duration
  /** Served stale for this long after `ttl` (getOrSet refreshes it meanwhile). @default the cache's `grace` */
  grace?: Duration
  /** Tags; `invalidateTags([tag])` makes every entry with the tag miss. @default [] */
  tags?: readonly string[]
}

export interface SetEntryOptions extends EntryOptions {
  /**
   * `readAt` of the read that preceded computing the value (from `getEntry`): an invalidation
   * after that moment makes the value miss, even though it is written later. @default now
   */
  since?: string
}

/**
 * A read with its metadata. `readAt` is the Redis time of the read, for `setEntry({ since })`
 * (a fresh hit may leave it out: the read skips TIME when nothing will be computed).
 * `age` counts from the write, or from the last `expire`/`touch`. A bare counter has no metadata.
 */
export type CacheEntry<T> =
  | { state: 'fresh', value: T, readAt?: string, storedAt?: number, age?: number, ttl?: number, grace?: number }
  | { state: 'stale', value: T, readAt: string, storedAt?: number, age?: number, ttl?: number, grace?: number }
  | { state: 'miss', readAt: string }
  | { state: 'error', error: Error }

/** What every namespace of one cache shares. */
export interface CacheCore {
  readonly client: Redis | Cluster
  readonly store: CacheStore
  readonly codec: Codec
  readonly breaker: CircuitBreaker
  readonly stats: CacheStats
  readonly flights: SingleFlight
  /** Buffered counters to flush on close. */
  readonly counters: Set<BufferedCounter>
  readonly options: ResolvedCacheOptions
  /** The keyspace of the root namespace; generation keys live in its reserved part. */
  readonly keyspace: Keyspace
  /**
   * Counts the writes and invalidations this process has finished. getOrSet joins a running
   * call of this process only when none finished since it started (read-your-writes).
   */
  readonly writes: { count: number }
  /** The in-memory tier, when the cache has `local`. */
  readonly local: LocalTier<LocalCopy> | undefined
}

/** A fresh entry as read from Redis, kept in memory, and when it was read (local ms). */
export interface LocalCopy {
  item: StoredItem
  at: number
  /** The decoded value when it is bytes (a Buffer is handed out as it is, so it is decoded once); objects are decoded at every hit, so that no caller sees another's changes. */
  bytes?: Buffer
}

// Counts that nobody reads (copies decoded for the local tier count apart).
const SCRATCH: NamespaceStats = { hits: 0, localHits: 0, misses: 0, staleHits: 0, errors: 0 }

/** The operations of one namespace. The public class `Cache` adds getOrSet, locks and counters. */
export class CacheBase {
  readonly core: CacheCore
  /** `'default'` for the root, `'feed'`, `'feed/today'` for nested namespaces. */
  readonly name: string
  readonly keyspace: Keyspace
  /** Generation keys of this namespace and its parents: every entry depends on them. */
  readonly gens: readonly string[]
  readonly namespaceStats: NamespaceStats

  constructor (core: CacheCore, name: string, parentGens: readonly string[]) {
    this.core = core
    this.name = name
    this.keyspace = core.keyspace.with({ namespace: name })
    this.gens = [...parentGens, this.genKey('n', name)]
    this.namespaceStats = core.stats.of(name)
  }

  /**
   * A generation key; they all share one hash tag, so one script bumps or reads them all.
   * They live in the reserved part of the keyspace, which no `deletePattern` reaches.
   */
  genKey (kind: 'n' | 't', name: string): string {
    if (typeof name !== 'string' || name === '') throw new InvalidOptionError('tags', 'a tag is a non-empty string')
    return this.core.keyspace.reservedKey([this.core.keyspace.prefix, 'gen'], kind, name)
  }

  /** The full Redis key of a cache key: escaped, never a digest, so that patterns match it at any length. */
  key (key: string | number): string {
    return this.keyspace.fullKey(key)
  }

  /** Records that a write or invalidation of this process finished (see CacheCore.writes). */
  wrote<T> (result: T): T {
    this.core.writes.count++
    return result
  }

  /** Runs a Redis call under the circuit breaker; a failure counts as an error and yields `fallback`. */
  async guard<T> (what: string, fn: () => Promise<T>, fallback: T, timeout?: number): Promise<T> {
    try {
      return await this.core.breaker.run(what, fn, timeout)
    } catch (err) {
      this.namespaceStats.errors++
      if (channels.cacheError.hasSubscribers) {
        const cause = (err as Error).cause
        channels.cacheError.publish({ prefix: this.core.keyspace.prefix, namespace: this.name, operation: what, error: cause instanceof Error ? cause.message : (err as Error).message })
      }
      return fallback
    }
  }

  /**
   * Reads full keys with their metadata; never rejects. `count: false` leaves the stats alone
   * (internal re-reads); `expectedTags` lets a Cluster read their generations in parallel;
   * `local: false` skips the in-memory tier.
   */
  readEntries<T> (fullKeys: readonly string[], count = true, expectedTags: readonly string[] = [], local = true): Promise<Array<CacheEntry<T>>> {
    // Observed reads are tallied apart, then added to the namespace's stats and published.
    const observed = count && channels.cacheRead.hasSubscribers
    const stats = count && !observed ? this.namespaceStats : { hits: 0, localHits: 0, misses: 0, staleHits: 0, errors: 0 }
    const tier = local ? this.core.local : undefined
    let held: Array<CacheEntry<T> | undefined> | undefined
    let keys = fullKeys
    if (tier?.live === true) {
      const now = Date.now()
      const copies = held = fullKeys.map((k) => this.#fromMemory<T>(tier.get(k, now), now, stats))
      keys = fullKeys.filter((_, i) => copies[i] === undefined)
      if (keys.length === 0) {
        if (observed) this.#published(stats, fullKeys.length)
        return Promise.resolve(copies as Array<CacheEntry<T>>)
      }
    }
    const gens = expectedTags.length === 0 ? this.gens : [...new Set([...this.gens, ...expectedTags.map((t) => this.genKey('t', t))])]
    const tickets = tier === undefined ? undefined : keys.map(() => tier.begin())
    return this.core.breaker.run('read', () => this.core.store.read(keys, gens)).then(
      (res) => {
        const now = Date.now()
        const read = res.items.map((item, i) => {
          if (tier !== undefined) keep(tier, keys[i] as string, (tickets as number[])[i] as number, item, now)
          return this.#toEntry<T>(item, res.now, stats)
        })
        if (observed) this.#published(stats, fullKeys.length)
        return merged(held, read)
      },
      (err: unknown) => {
        if (tier !== undefined) keys.forEach((k, i) => tier.end(k, (tickets as number[])[i] as number, undefined, 0, 0))
        stats.errors += keys.length
        if (observed) this.#published(stats, fullKeys.length)
        return merged(held, keys.map(() => ({ state: 'error', error: err as Error })))
      })
  }

  // A copy from memory, aged by the time it spent there; undefined sends the read to Redis.
  #fromMemory<T> (copy: LocalCopy | undefined, now: number, stats: NamespaceStats): CacheEntry<T> | undefined {
    if (copy === undefined) return undefined
    const { item, at } = copy
    const aged = item.pttl < 0 ? item : { ...item, pttl: item.pttl - (now - at) }
    const entry = this.#toEntry<T>(aged, '', SCRATCH, copy)
    if (entry.state !== 'fresh') return undefined
    stats.localHits++
    return entry
  }

  /**
   * A fresh copy of a full key from the local tier (counted as a local hit), or undefined.
   * `publish: false` leaves the read event to the caller (getOrSet publishes its own).
   */
  memoryEntry<T> (fullKey: string, publish = true): CacheEntry<T> | undefined {
    const tier = this.core.local
    if (tier?.live !== true) return undefined
    const now = Date.now()
    const entry = this.#fromMemory<T>(tier.get(fullKey, now), now, this.namespaceStats)
    if (entry !== undefined && publish && channels.cacheRead.hasSubscribers) channels.cacheRead.publish({ prefix: this.core.keyspace.prefix, namespace: this.name, keys: 1, hits: 1, misses: 0, stale: 0, errors: 0 })
    return entry
  }

  /** This instance is about to change these keys (entries or generations): its memory lets go of them. */
  changing (keys: readonly string[]): void {
    const tier = this.core.local
    if (tier !== undefined) for (const key of keys) tier.changed(key)
  }

  #published (tally: NamespaceStats, keys: number): void {
    const s = this.namespaceStats
    s.hits += tally.hits
    s.localHits += tally.localHits
    s.misses += tally.misses
    s.staleHits += tally.staleHits
    s.errors += tally.errors
    channels.cacheRead.publish({ prefix: this.core.keyspace.prefix, namespace: this.name, keys, hits: tally.hits + tally.localHits, misses: tally.misses, stale: tally.staleHits, errors: tally.errors })
  }

  #toEntry<T> (item: StoredItem | Error | null, readAt: string, stats: NamespaceStats, copy?: LocalCopy): CacheEntry<T> {
    if (item === null) {
      stats.misses++
      return { state: 'miss', readAt }
    }
    let value: T
    try {
      if (item instanceof Error) throw item
      if (copy?.bytes !== undefined) {
        value = copy.bytes as T
      } else {
        value = this.core.codec.decode(item.payload) as T
        if (copy !== undefined && Buffer.isBuffer(value)) copy.bytes = value
      }
    } catch (err) {
      this.core.breaker.warn(err, 'cache entry could not be decoded; treating it as a miss')
      stats.misses++
      return { state: 'miss', readAt }
    }
    const meta = item.meta
    if (meta === null) {
      stats.hits++
      return { state: 'fresh', value, ttl: item.pttl }
    }
    const stale = item.pttl >= 0 && item.pttl <= meta.grace && meta.grace > 0
    if (stale) stats.staleHits++
    else stats.hits++
    // PTTL gives the age without a clock; a key without a TTL needs the read's time.
    const age = item.pttl >= 0 ? Math.max(0, meta.ttl + meta.grace - item.pttl) : Math.max(0, Math.floor(Number(readAt) / 1000) - meta.storedAt)
    const found = { value, storedAt: meta.storedAt, age, ttl: meta.ttl, grace: meta.grace }
    return stale ? { state: 'stale', readAt, ...found } : { state: 'fresh', ...found }
  }

  /** Writes values to full keys; resolves how many were written (0 when Redis failed). */
  async writeEntries (fullKeys: readonly string[], values: readonly unknown[], opts: SetEntryOptions, nx: boolean): Promise<number> {
    const { ttl, grace } = entryLifetime(this.core.options, opts.ttl, opts.grace)
    const tags = opts.tags ?? []
    if (!Array.isArray(tags)) throw new InvalidOptionError('tags', 'expected an array of strings')
    const gens = [...this.gens, ...tags.map((t) => this.genKey('t', t))]
    // An integer is stored bare (a counter INCR can change) unless it needs a header for tags or
    // grace, or was computed from a read (getOrSet, setEntry): invalidations must reach it.
    const bare = tags.length === 0 && grace === 0 && opts.since === undefined
    const payloads = values.map((v) => this.core.codec.encode(v, bare))
    // '' means now.
    if (opts.since !== undefined && !/^\d*$/.test(opts.since)) throw new InvalidOptionError('since', 'expected the readAt of a getEntry() result')
    const maxTtl = this.core.options.maxTtl
    this.changing(fullKeys)
    return this.wrote(await this.guard('write', () => this.core.store.write(fullKeys, payloads, { ttl, grace, basis: opts.since ?? '', gens, nx, maxTtl }), 0))
  }

  /** A nested namespace's generation key for `invalidateAll()`. */
  get namespaceGen (): string {
    return this.gens[this.gens.length - 1] as string
  }
}

export interface CreateCacheOptions extends CacheOptions {
  /** The keyspace of the cache (feature `cache`); namespaces derive from it. */
  keyspace: Keyspace
  /** Where warnings go (rate-limited). @default console */
  log?: WarnLogger
  /** The longest a Redis call may take before it fails open, ms. @default 1000 */
  commandTimeout?: number
}

/** Builds the shared core of a cache on `client`. */
export function createCacheCore (client: Redis | Cluster, opts: CreateCacheOptions): CacheCore {
  const options = resolveCacheOptions(opts, 'cache', ['keyspace', 'log', 'commandTimeout'])
  if (!(opts.keyspace instanceof Keyspace)) throw new InvalidOptionError('keyspace', 'expected a Keyspace from lib/keys.ts')
  const log = opts.log ?? { warn: (obj: object, msg: string) => console.warn(msg, obj) }
  const commandTimeout = opts.commandTimeout ?? 1000
  // A standalone client whose own commandTimeout is no longer bounds every cache call (each
  // is one command there); a Cluster read is two, so the breaker times those itself.
  const own = isCluster(client) ? undefined : client.options.commandTimeout
  const timeout = own !== undefined && own <= commandTimeout ? Infinity : commandTimeout
  let local: LocalTier<LocalCopy> | undefined
  if (options.local !== undefined) {
    local = new LocalTier<LocalCopy>(client, opts.keyspace.reservedKey(['changed']), options.local, (live, err) => {
      if (!live) log.warn({ err }, 'cache local tier: invalidation subscription lost; every read goes to Redis until it is back')
    }, 'frs:cache-invalidation')
    local.start()
  }
  return Object.freeze({
    client,
    store: new CacheStore(client, local === undefined ? undefined : { channel: opts.keyspace.reservedKey(['changed']), origin: local.origin }),
    codec: new Codec(options),
    breaker: new CircuitBreaker({ threshold: options.failureThreshold, openFor: options.circuitOpenFor, timeout, warnInterval: options.warnInterval, log, client }),
    stats: new CacheStats(),
    flights: new SingleFlight(),
    counters: new Set<BufferedCounter>(),
    options,
    keyspace: opts.keyspace,
    writes: { count: 0 },
    local
  })
}

// Keeps a fresh entry read from Redis in memory (never a counter, never a stale one), for no
// longer than it stays fresh; every read ends its ticket.
function keep (tier: LocalTier<LocalCopy>, key: string, ticket: number, item: StoredItem | Error | null, now: number): void {
  if (item === null || item instanceof Error || item.meta === null || (item.pttl >= 0 && item.pttl <= item.meta.grace)) {
    tier.end(key, ticket, undefined, 0, now)
    return
  }
  tier.end(key, ticket, { item, at: now }, item.pttl < 0 ? Infinity : item.pttl - item.meta.grace, now, item.meta.gens)
}

function merged<E> (held: Array<E | undefined> | undefined, read: E[]): E[] {
  if (held === undefined) return read
  let i = 0
  return held.map((e) => e ?? read[i++] as E)
}
