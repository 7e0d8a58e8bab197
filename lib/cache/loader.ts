import { setTimeout as sleep } from 'node:timers/promises'
import type { CacheBase, CacheEntry, EntryOptions } from './base.js'
import { CacheFactoryTimeoutError, channels, checkKeys, hashed, optionKeys, parseDuration, parsePositiveDuration } from '../core/index.js'
import type { Duration } from '../core/index.js'
import { acquireLock } from './lock.js'
import type { LockHandle } from './lock.js'

export interface GetOrSetOptions extends EntryOptions {
  /** How long the factory may run. @default the cache's `factoryTimeout` */
  timeout?: Duration
  /**
   * Coalesce across app instances: one instance computes under a Redis lock while the others
   * wait up to `wait` for its value, then compute it themselves. @default false
   */
  lock?: boolean | { ttl?: Duration, wait?: Duration }
  /** When the factory fails and a stale value is at hand, serve it. @default true */
  staleIfError?: boolean
  /** `false` reads from Redis even when the cache has a `local` tier. @default true */
  local?: boolean
}

const GET_OR_SET_KEYS = optionKeys<GetOrSetOptions>({ ttl: true, grace: true, tags: true, timeout: true, lock: true, staleIfError: true, local: true })

const LOCK_KEYS: readonly string[] = ['ttl', 'wait']

/** What a factory may decide from its result. */
export interface FactoryContext<T> {
  /** The stale value being refreshed, if any. */
  readonly stale: T | undefined
  /** Do not cache this result (it is still returned). */
  skip: () => void
  /** Override the entry's lifetime or tags from the result. */
  ttl?: Duration
  grace?: Duration
  tags?: readonly string[]
}

export type Factory<T> = (ctx: FactoryContext<T>) => T | Promise<T>

/** A getOrSet outcome: `hit` from cache, `stale` served while one refresh runs, `miss` computed, `bypass` computed while Redis failed. */
export interface LoadResult<T> {
  value: T
  state: 'hit' | 'stale' | 'miss' | 'bypass'
  /** Milliseconds since the value was stored (hit and stale). */
  age?: number
  /** Redis time (ms) of the write (hit and stale). */
  storedAt?: number
}

type Found<T> = Extract<CacheEntry<T>, { state: 'fresh' | 'stale' }>

function found<T> (e: Found<T>): LoadResult<T> {
  return { value: e.value, state: e.state === 'fresh' ? 'hit' : 'stale', age: e.age, storedAt: e.storedAt }
}

/**
 * getOrSet: see docs/cache.md. Concurrent calls for one key in this process share one read
 * and one factory call. Never rejects because of Redis; rejects with the factory's error.
 */
export function getOrSetEntry<T> (cache: CacheBase, key: string | number, factory: Factory<T>, opts: GetOrSetOptions = {}): Promise<LoadResult<T>> {
  checkKeys(opts, GET_OR_SET_KEYS, 'getOrSet')
  // A fresh copy in this instance's memory answers at once (counted as a local hit).
  const held = opts.local === false ? undefined : cache.memoryEntry<T>(cache.key(key), false)
  if (held?.state === 'fresh') {
    if (channels.cacheGetOrSet.hasSubscribers) channels.cacheGetOrSet.publish({ prefix: cache.core.keyspace.prefix, namespace: cache.name, state: 'hit' })
    return Promise.resolve(found(held))
  }
  return sharedLoad(cache, key, factory, opts).then((result) => {
    // Counted per caller, though callers share the read.
    const c = cache.namespaceStats
    if (result.state === 'hit') c.hits++
    else if (result.state === 'stale') c.staleHits++
    else if (result.state === 'miss') c.misses++
    else c.errors++
    if (channels.cacheGetOrSet.hasSubscribers) channels.cacheGetOrSet.publish({ prefix: cache.core.keyspace.prefix, namespace: cache.name, state: result.state })
    return result
  })
}

function sharedLoad<T> (cache: CacheBase, key: string | number, factory: Factory<T>, opts: GetOrSetOptions): Promise<LoadResult<T>> {
  const full = cache.key(key)
  // A call joins a running one only when no write or invalidation of this process finished
  // since that one started: a caller after `await invalidateTags()` never gets a value that
  // was read or computed before it.
  return cache.core.flights.run(cache.core.writes.count + '\n' + full, () => cache.readEntries<T>([full], false, opts.tags, opts.local !== false).then(([read]) => {
    const r = read as CacheEntry<T>
    if (r.state === 'fresh') return found(r)
    if (r.state === 'stale') {
      // Served at once; the refresh runs behind it, once per process (and once overall with a lock).
      const flights = cache.core.flights
      const refreshKey = 'refresh\n' + full
      if (!flights.has(refreshKey)) {
        flights.run(refreshKey, () => loadValue(cache, key, full, factory, opts, r))
          .catch((err) => cache.core.breaker.warn(err, 'cache refresh failed; the stale value stays'))
      }
      return found(r)
    }
    return loadValue(cache, key, full, factory, opts, r)
  }))
}

async function loadValue<T> (cache: CacheBase, key: string | number, full: string, factory: Factory<T>, opts: GetOrSetOptions, read: CacheEntry<T>): Promise<LoadResult<T>> {
  const o = cache.core.options
  let lock: LockHandle | null | undefined
  if (opts.lock !== undefined && opts.lock !== false && read.state !== 'error') {
    const lo = typeof opts.lock === 'object' ? opts.lock : {}
    checkKeys(lo, LOCK_KEYS, 'lock')
    const ttl = lo.ttl === undefined ? o.lockTtl : parsePositiveDuration(lo.ttl, 'lock.ttl')
    const lockKey = fillLockKey(cache, full)
    // undefined: Redis failed, compute without the lock (fail open); null: another instance holds it.
    lock = await cache.guard('lock', () => acquireLock(cache.core.client, lockKey, { ttl }), undefined)
    if (lock === null) {
      if (read.state === 'stale') return found(read)
      const wait = lo.wait === undefined ? o.lockWait : parseDuration(lo.wait, 'lock.wait')
      const value = await waitForValue<T>(cache, full, lockKey, wait)
      if (value !== undefined) return value
    } else if (lock !== undefined) {
      // The previous holder may have written the value just before we got the lock.
      const [again] = await cache.readEntries<T>([full], false) as [CacheEntry<T>]
      if (again.state === 'fresh') {
        await lock.release().catch(() => false)
        return found(again)
      }
    }
  }
  try {
    return await compute(cache, key, full, factory, opts, read)
  } finally {
    if (lock) await lock.release().catch(() => false)
  }
}

async function compute<T> (cache: CacheBase, key: string | number, full: string, factory: Factory<T>, opts: GetOrSetOptions, read: CacheEntry<T>): Promise<LoadResult<T>> {
  const stale = read.state === 'stale' ? read : undefined
  let skipped = false
  const ctx: FactoryContext<T> = { stale: stale?.value, skip: () => { skipped = true } }
  const timeout = opts.timeout === undefined ? cache.core.options.factoryTimeout : parsePositiveDuration(opts.timeout, 'timeout')
  let value: T
  try {
    value = await withTimeout(Promise.resolve().then(() => factory(ctx)), timeout, String(key))
  } catch (err) {
    if (stale !== undefined && opts.staleIfError !== false) {
      cache.core.breaker.warn(err, 'cache factory failed; serving the stale value')
      return found(stale)
    }
    throw err
  }
  // After a failed read the write is skipped: without the read's Redis time, an invalidation
  // that ran during the factory could not be told apart.
  if (read.state === 'error') return { value, state: 'bypass' }
  if (!skipped) {
    await cache.writeEntries([full], [value], {
      ttl: ctx.ttl ?? opts.ttl, grace: ctx.grace ?? opts.grace, tags: ctx.tags ?? opts.tags, since: read.readAt
    }, false)
  }
  return { value, state: 'miss' }
}

/** The key of the lock under which one instance computes `full` (`lock: true`); reserved, so no deletePattern removes it. */
export function fillLockKey (cache: CacheBase, full: string): string {
  return cache.keyspace.reservedKey(['fill', hashed(full)])
}

/**
 * Waits for the lock holder's value. The holder deletes the lock when its factory ends, with
 * or without a value (a throw, a timeout, `ctx.skip()`): a lock that is gone with no value
 * behind it ends the wait at once. Polling with a growing step (10 ms to 50 ms) needs no
 * other connection; a notification channel would need a subscriber on every Cluster node.
 */
async function waitForValue<T> (cache: CacheBase, full: string, lockKey: string, wait: number): Promise<LoadResult<T> | undefined> {
  const deadline = Date.now() + wait
  let step = 10
  while (Date.now() < deadline) {
    await sleep(Math.min(Math.max(1, deadline - Date.now()), Math.round(step * (0.5 + Math.random()))))
    step = Math.min(50, step * 2)
    const [[e], held] = await Promise.all([
      cache.readEntries<T>([full], false) as Promise<[CacheEntry<T>]>,
      cache.guard('lock', () => cache.core.client.exists(lockKey), 1)
    ])
    if (e.state === 'fresh') return found(e)
    if (e.state === 'error') return undefined
    if (held === 0) {
      // The holder may have written its value between the two reads: look once more.
      const [again] = await cache.readEntries<T>([full], false) as [CacheEntry<T>]
      return again.state === 'fresh' ? found(again) : undefined
    }
  }
  return undefined
}

function withTimeout<T> (p: Promise<T>, ms: number, key: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CacheFactoryTimeoutError(key, ms)), ms)
  })
  return Promise.race([p, limit]).finally(() => clearTimeout(timer))
}
