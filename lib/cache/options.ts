import { checkKeys, InvalidOptionError, optionKeys, parseDuration, parsePositiveDuration } from '../core/index.js'
import type { Duration } from '../core/index.js'

export interface CacheOptions {
  /** Fresh lifetime of an entry when a call gives none. @default '5m' */
  ttl?: Duration
  /** Stale-while-revalidate window past `ttl` when a call gives none. @default 0 */
  grace?: Duration
  /**
   * The longest `ttl + grace` an entry may have. Invalidation records (namespace and tag
   * generations) live this long, so that no entry outlives the record that invalidates it.
   * @default '30d'
   */
  maxTtl?: Duration
  /** Values whose encoded size is at least this many bytes are compressed; `false` never. @default 1024 */
  compressThreshold?: number | false
  /** Compression for new values (both are always read). @default 'deflate' */
  compression?: 'deflate' | 'brotli'
  /** getOrSet: how long a factory may run before it fails with FRS_CACHE_FACTORY_TIMEOUT. @default '10s' */
  factoryTimeout?: Duration
  /** getOrSet with `lock`: how long a lock is held at most (it is released when the factory ends). @default factoryTimeout + 1s */
  lockTtl?: Duration
  /** getOrSet with `lock`: how long other instances wait for the holder's value before they compute it themselves. @default factoryTimeout */
  lockWait?: Duration
  /** Consecutive Redis failures after which the circuit opens. @default 5 */
  failureThreshold?: number
  /** How long an open circuit skips Redis. @default '5s' */
  circuitOpenFor?: Duration
  /** At most one warning per this interval. @default '10s' */
  warnInterval?: Duration
  /**
   * Serve repeated reads from this instance's memory (`true` for the defaults): fresh entries
   * read from Redis are kept for a short `ttl`, and every write, delete, expire, tag or
   * namespace invalidation and deletePattern of any instance drops them everywhere through
   * Redis pub/sub. Set it on every instance that writes the cache: an instance publishes its
   * changes only when it has `local`. @default false
   */
  local?: boolean | LocalOptions
}

/** The local (in-memory) tier of the cache. */
export interface LocalOptions {
  /** How long a value is served from memory at most (never past its fresh lifetime). @default '1s' */
  ttl?: Duration
  /** The most values held per instance; past it, the oldest goes. @default 10000 */
  max?: number
}

export interface ResolvedCacheOptions {
  ttl: number
  grace: number
  maxTtl: number
  compressThreshold: number | false
  compression: 'deflate' | 'brotli'
  factoryTimeout: number
  lockTtl: number
  lockWait: number
  failureThreshold: number
  circuitOpenFor: number
  warnInterval: number
  local: { ttl: number, max: number } | undefined
}

/** The names of the cache options. */
export const CACHE_OPTION_KEYS = optionKeys<CacheOptions>({
  ttl: true, grace: true, maxTtl: true, compressThreshold: true, compression: true, factoryTimeout: true, lockTtl: true, lockWait: true, failureThreshold: true, circuitOpenFor: true, warnInterval: true, local: true
})
const LOCAL_KEYS = optionKeys<LocalOptions>({ ttl: true, max: true })

/**
 * Validates cache options and fills defaults; throws InvalidOptionError naming the option.
 * A key that is neither a cache option nor in `moreKeys` is refused as `${path}.key`.
 */
export function resolveCacheOptions (opts: CacheOptions = {}, path = 'cache', moreKeys: readonly string[] = []): ResolvedCacheOptions {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError(path, 'expected an options object')
  checkKeys(opts, moreKeys.length === 0 ? CACHE_OPTION_KEYS : [...CACHE_OPTION_KEYS, ...moreKeys], path)
  const ttl = parsePositiveDuration(opts.ttl ?? '5m', 'ttl')
  const grace = parseDuration(opts.grace ?? 0, 'grace')
  const maxTtl = parsePositiveDuration(opts.maxTtl ?? '30d', 'maxTtl')
  if (ttl + grace > maxTtl) throw new InvalidOptionError('ttl', `ttl + grace (${ttl + grace}ms) exceeds maxTtl (${maxTtl}ms)`)
  const threshold = opts.compressThreshold ?? 1024
  if (threshold !== false && (!Number.isSafeInteger(threshold) || threshold < 0)) {
    throw new InvalidOptionError('compressThreshold', 'expected a non-negative integer number of bytes, or false')
  }
  const compression = opts.compression ?? 'deflate'
  if (compression !== 'deflate' && compression !== 'brotli') throw new InvalidOptionError('compression', 'expected "deflate" or "brotli"')
  const failureThreshold = opts.failureThreshold ?? 5
  if (!Number.isSafeInteger(failureThreshold) || failureThreshold < 1) throw new InvalidOptionError('failureThreshold', 'expected a positive integer')
  const factoryTimeout = parsePositiveDuration(opts.factoryTimeout ?? '10s', 'factoryTimeout')
  return Object.freeze({
    ttl,
    grace,
    maxTtl,
    compressThreshold: threshold,
    compression,
    factoryTimeout,
    lockTtl: parsePositiveDuration(opts.lockTtl ?? factoryTimeout + 1000, 'lockTtl'),
    lockWait: parseDuration(opts.lockWait ?? factoryTimeout, 'lockWait'),
    failureThreshold,
    circuitOpenFor: parsePositiveDuration(opts.circuitOpenFor ?? '5s', 'circuitOpenFor'),
    warnInterval: parseDuration(opts.warnInterval ?? '10s', 'warnInterval'),
    local: resolveLocal(opts.local, path)
  })
}

function resolveLocal (local: CacheOptions['local'], path: string): ResolvedCacheOptions['local'] {
  if (local === undefined || local === false) return undefined
  const o = local === true ? {} : local
  if (o === null || typeof o !== 'object') throw new InvalidOptionError(`${path}.local`, 'expected true, false or { ttl, max }')
  checkKeys(o, LOCAL_KEYS, `${path}.local`)
  const max = o.max ?? 10_000
  if (!Number.isSafeInteger(max) || max < 1) throw new InvalidOptionError(`${path}.local.max`, 'expected a positive integer')
  return Object.freeze({ ttl: parsePositiveDuration(o.ttl ?? '1s', `${path}.local.ttl`), max })
}

/** A per-call lifetime: `ttl` and `grace` with the cache's defaults, checked against maxTtl. */
export function entryLifetime (o: ResolvedCacheOptions, ttl: Duration | undefined, grace: Duration | undefined): { ttl: number, grace: number } {
  const t = ttl === undefined ? o.ttl : parsePositiveDuration(ttl, 'ttl')
  const g = grace === undefined ? o.grace : parseDuration(grace, 'grace')
  if (t + g > o.maxTtl) throw new InvalidOptionError('ttl', `ttl + grace (${t + g}ms) exceeds maxTtl (${o.maxTtl}ms)`)
  return { ttl: t, grace: g }
}
