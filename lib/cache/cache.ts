import type { Cluster, Redis } from 'ioredis'
import { CacheBase, createCacheCore } from './base.js'
import type { CacheCore, CacheEntry, CreateCacheOptions, EntryOptions, SetEntryOptions } from './base.js'
import { getOrSetEntry } from './loader.js'
import type { Factory, GetOrSetOptions, LoadResult } from './loader.js'
import type { NamespaceStats } from './stats.js'
import { CacheUndefinedValueError, checkKeys, deleteByPattern, InvalidOptionError, optionKeys, parseDuration, parsePositiveDuration } from '../core/index.js'
import type { Duration, KeyGlob } from '../core/index.js'
import { BufferedCounter, incrKeepTtl } from './counter.js'
import { acquireLock, withLock } from './lock.js'
import type { LockHandle } from './lock.js'

export type { CacheEntry, EntryOptions, SetEntryOptions } from './base.js'
export type { Factory, FactoryContext, GetOrSetOptions, LoadResult } from './loader.js'
export type { CacheOptions } from './options.js'

/** What `stats()` reports. */
export interface CacheStatsReport {
  /** True while the circuit breaker skips Redis. */
  circuitOpen: boolean
  /** Counters by namespace (`default` is the root). */
  namespaces: Record<string, NamespaceStats>
}

export interface CounterOptions {
  /** Hand the total to `onFlush` each time this many increments are pending. @default 100 */
  flushEvery?: number
  /** Also hand over what is pending this often. @default '10s' */
  flushInterval?: Duration
  /** Receives each claimed total (e.g. adds it to the database); when it rejects, the total goes back to Redis. */
  onFlush: (total: number) => Promise<void>
}

/** Options of one read. */
export interface ReadOptions {
  /** `false` reads from Redis even when the cache has a `local` tier. @default true */
  local?: boolean
}

export interface CacheLockOptions {
  /** How long the lock is held at most. @default '10s' */
  ttl?: Duration
  /** How long to try to get it; 0 tries once. @default 0 */
  wait?: Duration
}

/**
 * The cache toolkit: cache-aside, write-through, bulk operations, namespaces, tags, TTL
 * operations, counters and locks on one Redis client. Every cache operation fails open:
 * when Redis fails it reads as a miss or a no-op and never rejects (see docs/cache.md).
 */
export class Cache extends CacheBase {
  /** A cache scoped to a nested namespace; `invalidateAll()` on it reaches only its entries. */
  namespace (name: string): Cache {
    if (typeof name !== 'string' || name === '' || name === 'default' || name.includes('/')) throw new InvalidOptionError('namespace', 'expected a non-empty name without "/", other than "default"')
    return new Cache(this.core, this.name === 'default' ? name : `${this.name}/${name}`, this.gens)
  }

  /** The value, or `undefined` for a miss (stale values count as values). */
  async get<T = unknown> (key: string | number, opts?: ReadOptions): Promise<T | undefined> {
    const [e] = await this.readEntries<T>([this.key(key)], true, [], readLocal(opts)) as [CacheEntry<T>]
    return e.state === 'fresh' || e.state === 'stale' ? e.value : undefined
  }

  /** The value with its state (fresh, stale, miss, error) and metadata. One round trip on a standalone server. */
  async getEntry<T = unknown> (key: string | number, opts?: ReadOptions): Promise<CacheEntry<T>> {
    return (await this.readEntries<T>([this.key(key)], true, [], readLocal(opts)))[0] as CacheEntry<T>
  }

  /**
   * The entry of `key` when this instance's local tier holds it fresh (counted as a local
   * hit), else undefined; never asks Redis. For the response cache's lookups.
   */
  localEntry<T = unknown> (key: string | number): CacheEntry<T> | undefined {
    return this.memoryEntry<T>(this.key(key))
  }

  /** True when the key holds a value. */
  async has (key: string | number, opts?: ReadOptions): Promise<boolean> {
    const state = (await this.getEntry(key, opts)).state
    return state === 'fresh' || state === 'stale'
  }

  /** Values in input order; `undefined` marks a miss (`null` is a value). One round trip on a standalone server. */
  async getMany<T = unknown> (keys: ReadonlyArray<string | number>, opts?: ReadOptions): Promise<Array<T | undefined>> {
    if (keys.length === 0) return []
    const entries = await this.readEntries<T>(keys.map((k) => this.key(k)), true, [], readLocal(opts))
    return entries.map((e) => e.state === 'fresh' || e.state === 'stale' ? e.value : undefined)
  }

  /** Stores a value; false when Redis failed. Rejects only for a value that cannot be stored (`undefined`). */
  async set (key: string | number, value: unknown, opts: SetEntryOptions = {}): Promise<boolean> {
    return (await this.writeEntries([this.key(key)], [value], opts, false)) === 1
  }

  /** `set` under the name the response cache uses, taking `since` from `getEntry().readAt`. */
  setEntry (key: string | number, value: unknown, opts: SetEntryOptions = {}): Promise<boolean> {
    return this.set(key, value, opts)
  }

  /** Stores the value only when the key holds no valid value; true when it stored it. */
  async add (key: string | number, value: unknown, opts: EntryOptions = {}): Promise<boolean> {
    return (await this.writeEntries([this.key(key)], [value], opts, true)) === 1
  }

  /** Stores several values with one lifetime; true when all were written. */
  async setMany (entries: Iterable<readonly [string | number, unknown]> | Record<string, unknown>, opts: EntryOptions = {}): Promise<boolean> {
    const list = Symbol.iterator in entries ? [...entries as Iterable<readonly [string | number, unknown]>] : Object.entries(entries)
    if (list.length === 0) return true
    return (await this.writeEntries(list.map(([k]) => this.key(k)), list.map(([, v]) => v), opts, false)) === list.length
  }

  /** Deletes a key; true when it existed. */
  async delete (key: string | number): Promise<boolean> {
    return (await this.deleteMany([key])) === 1
  }

  /** Deletes keys; how many existed (0 when Redis failed). */
  deleteMany (keys: ReadonlyArray<string | number>): Promise<number> {
    const full = keys.map((k) => this.key(k))
    this.changing(full)
    return this.guard('delete', () => this.core.store.delete(full), 0).then((n) => this.wrote(n))
  }

  /** Milliseconds the value stays fresh; -1 without a TTL; -2 missing (or Redis failed). */
  ttl (key: string | number): Promise<number> {
    const full = this.key(key)
    return this.guard('ttl', () => this.core.store.expire(full, 'ttl', '', 0, this.core.options.maxTtl), -2)
  }

  /**
   * Sets a new fresh lifetime (the entry's grace is added on top); false when the key is
   * missing. An entry never lives past `maxTtl` after its value was computed, the life of the
   * invalidation records, so the lifetime is cut there.
   */
  async expire (key: string | number, ttl: Duration): Promise<boolean> {
    const ms = parsePositiveDuration(ttl, 'ttl')
    const full = this.key(key)
    this.changing([full])
    return (await this.guard('expire', () => this.core.store.expire(full, 'expire', ms, ms, this.core.options.maxTtl), 0)) === 1
  }

  /** Renews the lifetime: `ttl`, or the entry's own ttl (the cache's default for a counter); cut as in {@link expire}. */
  async touch (key: string | number, ttl?: Duration): Promise<boolean> {
    const ms = ttl === undefined ? '' : parsePositiveDuration(ttl, 'ttl')
    const full = this.key(key)
    return (await this.guard('touch', () => this.core.store.expire(full, 'touch', ms, this.core.options.ttl, this.core.options.maxTtl), 0)) === 1
  }

  /**
   * A counter loses its TTL. An entry lives on until `maxTtl` after its value was computed,
   * the longest any entry lives: past that, no invalidation record could reach it.
   */
  async persist (key: string | number): Promise<boolean> {
    const full = this.key(key)
    return (await this.guard('persist', () => this.core.store.expire(full, 'persist', '', 0, this.core.options.maxTtl), 0)) === 1
  }

  /** Every entry tagged with one of `tags`, in every namespace, misses from now on, on every instance. O(tags). */
  async invalidateTags (tags: readonly string[]): Promise<boolean> {
    if (!Array.isArray(tags)) throw new InvalidOptionError('tags', 'expected an array of strings')
    if (tags.length === 0) return true
    const gens = [...new Set(tags)].map((t) => this.genKey('t', t))
    this.changing(gens)
    return this.wrote(await this.guard('invalidateTags', async () => { await this.core.store.bump(gens, this.core.options.maxTtl); return true }, false))
  }

  /** Every entry of this namespace (and of its nested namespaces) misses from now on. O(1). */
  async invalidateAll (): Promise<boolean> {
    this.changing([this.namespaceGen])
    return this.wrote(await this.guard('invalidateAll', async () => { await this.core.store.bump([this.namespaceGen], this.core.options.maxTtl); return true }, false))
  }

  /** The cached value, or the factory's (cached): see {@link getOrSetEntry}. */
  getOrSet<T> (key: string | number, factory: Factory<T>, opts?: GetOrSetOptions): Promise<T> {
    return this.getOrSetEntry(key, factory, opts).then((r) => r.value)
  }

  /**
   * Like getOrSet, with how the value was found: `hit`, `stale` (one refresh runs behind it),
   * `miss` (computed here, or by another caller this one waited for) or `bypass` (Redis failed).
   */
  getOrSetEntry<T> (key: string | number, factory: Factory<T>, opts?: GetOrSetOptions): Promise<LoadResult<T>> {
    try {
      return getOrSetEntry(this, key, factory, opts)
    } catch (err) {
      return Promise.reject(err) // an invalid key or option rejects, as from an async function
    }
  }

  /** Persists first, then caches; when `persist` throws, the cache is untouched and the error is rethrown. */
  async writeThrough<T> (key: string | number, value: T, persist: (value: T) => unknown, opts: EntryOptions = {}): Promise<boolean> {
    if (value === undefined) throw new CacheUndefinedValueError() // before persisting: the cache could not follow
    await persist(value)
    if (await this.set(key, value, opts)) return true
    // The cache could not take the new value: drop the old one rather than serve it.
    await this.delete(key)
    return false
  }

  /**
   * Adds `by` to a counter and resolves the new value; the key keeps its TTL, and a counter
   * that did not exist is created with `ttl`. Resolves undefined when Redis failed or the key
   * holds a value that is not an integer (with a warning).
   */
  incr (key: string | number, by = 1, opts: { ttl?: Duration } = {}): Promise<number | undefined> {
    const full = this.key(key)
    const ttl = opts.ttl === undefined ? this.core.options.ttl : parsePositiveDuration(opts.ttl, 'ttl')
    if (!Number.isSafeInteger(by)) throw new InvalidOptionError('by', 'expected a safe integer')
    return this.guard('incr', () => incrKeepTtl(this.core.client, full, by, ttl), undefined)
  }

  /** Subtracts `by`: see {@link incr}. */
  decr (key: string | number, by = 1, opts: { ttl?: Duration } = {}): Promise<number | undefined> {
    return this.incr(key, -by, opts)
  }

  /**
   * A counter shared by every instance that hands its total to `onFlush` every `flushEvery`
   * increments or `flushInterval`, without losing or double-counting (lib/counter.ts).
   * `cache.close()` (the plugin calls it on app close) flushes what is pending.
   */
  counter (name: string | number, opts: CounterOptions): BufferedCounter {
    const counter = new BufferedCounter({
      client: this.core.client,
      key: this.key(name),
      flushEvery: opts.flushEvery ?? 100,
      flushInterval: parsePositiveDuration(opts.flushInterval ?? '10s', 'flushInterval'),
      onFlush: opts.onFlush,
      logger: this.core.breaker.log
    })
    this.core.counters.add(counter)
    return counter
  }

  /** Closes every buffered counter made by this cache (of any namespace), flushing what is pending. */
  async close (): Promise<void> {
    const counters = [...this.core.counters]
    this.core.counters.clear()
    await this.core.local?.close()
    const results = await Promise.allSettled(counters.map((c) => c.close()))
    for (const r of results) if (r.status === 'rejected') this.core.breaker.warn(r.reason, 'buffered counter: the last flush failed')
  }

  /**
   * Deletes this namespace's entries and counters whose key matches `glob` (`*` is the only
   * wildcard; every other character matches itself; build it with `keyGlob` to put user
   * input in literally): SCAN on every master, UNLINK in batches. Invalidation records and
   * locks are never matched. Resolves how many were deleted (0 when Redis failed).
   */
  async deletePattern (glob: string | KeyGlob): Promise<number> {
    const pattern = this.keyspace.pattern(glob)
    this.core.local?.dropAll()
    return this.wrote(await this.guard('deletePattern', async () => {
      const deleted = await deleteByPattern(this.core.client, pattern)
      // Every instance drops its memory: matching patterns against it is not worth their time.
      this.core.local?.dropAll()
      await this.core.store.changedAll()
      return deleted
    }, 0, Infinity))
  }

  /** A token lock named `name` in this namespace; null when not acquired within `wait`. Rejects when Redis fails (a lock never fails open). */
  lock (name: string, opts: CacheLockOptions = {}): Promise<LockHandle | null> {
    return acquireLock(this.core.client, this.#lockKey(name), lockOptions(opts))
  }

  /** Runs `fn` under the lock `name` and releases it; rejects with FRS_LOCK_TIMEOUT when not acquired within `wait`. */
  withLock<T> (name: string, fn: (lock: LockHandle) => Promise<T>, opts: CacheLockOptions = {}): Promise<T> {
    return withLock(this.core.client, this.#lockKey(name), lockOptions(opts), fn)
  }

  // In the reserved part of the keyspace, so that no deletePattern removes a held lock.
  #lockKey (name: string): string {
    if (typeof name !== 'string' || name === '') throw new InvalidOptionError('name', 'a lock name is a non-empty string')
    return this.keyspace.reservedKey(['lock', name])
  }

  /** Hits (from Redis and from memory), misses, stale hits and errors of every namespace of this cache. */
  stats (): CacheStatsReport {
    return { circuitOpen: this.core.breaker.open, namespaces: this.core.stats.snapshot() }
  }
}

const LOCK_KEYS = optionKeys<CacheLockOptions>({ ttl: true, wait: true })
const READ_KEYS = optionKeys<ReadOptions>({ local: true })

function readLocal (opts: ReadOptions | undefined): boolean {
  if (opts === undefined) return true
  checkKeys(opts, READ_KEYS, 'read')
  return opts.local !== false
}

function lockOptions (opts: CacheLockOptions): { ttl: number, wait: number } {
  checkKeys(opts, LOCK_KEYS, 'lock')
  return { ttl: parsePositiveDuration(opts.ttl ?? '10s', 'ttl'), wait: parseDuration(opts.wait ?? 0, 'wait') }
}

/** A cache on `client`; `opts.keyspace` is the cache's keyspace (feature `cache`). */
export function createCache (client: Redis | Cluster, opts: CreateCacheOptions): Cache {
  const core: CacheCore = createCacheCore(client, opts)
  return new Cache(core, 'default', [])
}
