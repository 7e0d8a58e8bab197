// Options of the response cache, validated once at registration (plugin) or at route
// registration (route config), with every default in one place.
import { checkKeys, InvalidOptionError, optionKeys, parseDuration, REGISTER_KEYS } from '../core/index.js'
import type { Duration } from '../core/index.js'
import { DEFAULT_KEPT_HEADERS } from './http.js'
import type { CookieNames } from './http.js'

/** The request as the option functions see it (a Fastify request; lib/ does not import fastify). */
export interface CacheRequest {
  headers: Record<string, string | string[] | undefined>
  url: string
}

/**
 * The `Cache-Control` sent to browsers and CDNs with a cached response, apart from how long
 * this cache keeps the entry (`ttl`). Per-user entries always get `private` instead of
 * `public`, and never `s-maxage`.
 */
export interface CacheControlDirectives {
  /** `max-age` in whole seconds: a duration, or `'ttl'` to count down to the entry's expiry in this cache. @default none */
  maxAge?: Duration | 'ttl'
  /** `s-maxage` for shared caches (CDNs), in whole seconds, or `'ttl'`. @default none */
  sMaxAge?: Duration | 'ttl'
  /** `stale-while-revalidate` (RFC 5861), in whole seconds. @default none */
  staleWhileRevalidate?: Duration
  /** `stale-if-error` (RFC 5861), in whole seconds. @default none */
  staleIfError?: Duration
  /** `no-cache`: downstream caches revalidate (with the ETag) before every use, so an invalidation reaches them at once. @default true when neither `maxAge` nor `sMaxAge` is given */
  noCache?: boolean
  /** `must-revalidate`. @default false */
  mustRevalidate?: boolean
  /** `immutable`. @default false */
  immutable?: boolean
}

/**
 * What cached responses tell downstream caches: directives, a literal header value, or `false`
 * to send none of ours. A handler's own `Cache-Control` always wins.
 */
export type CacheControlOption = CacheControlDirectives | string | false

/** Response headers that carry an entry's tags to a CDN, for purging by tag: `surrogate-key` (space-separated, Fastly and others) or `cache-tag` (comma-separated, Cloudflare, Akamai). */
export type TagHeader = 'surrogate-key' | 'cache-tag'

export interface ResponseCacheOptions {
  /** How long an entry is fresh. @default '1m' */
  ttl?: Duration
  /** How long past `ttl` a stale entry is still served while one refresh runs. @default 0 */
  staleWhileRevalidate?: Duration
  /** How long past `ttl` a stale entry is served instead of the handler's error (a throw or a 5xx). @default 0 */
  staleIfError?: Duration
  /** The `Cache-Control` of cached responses (HIT, STALE, MISS) for browsers and CDNs. @default { noCache: true } (`public, no-cache`; `private, no-cache` per user) */
  cacheControl?: CacheControlOption
  /** A client's `Cache-Control: no-cache` or `max-age=0`: `'ignore'` answers from the cache as usual; `'revalidate'` runs the handler and stores the new response. @default 'ignore' */
  clientNoCache?: 'ignore' | 'revalidate'
  /** Send each shared entry's tags in this response header, so that the same tags can purge a CDN. @default false */
  tagHeader?: TagHeader | false
  /** Response statuses that may be stored. @default [200] */
  statuses?: number[]
  /** Request headers whose values become part of every key (e.g. `['accept-language']`; add `'accept-encoding'` when responses are compressed). @default [] */
  vary?: string[]
  /** Response headers kept in an entry besides the defaults (content-type, content-language, content-encoding, content-disposition, link, last-modified, vary, x-content-type-options). @default [] */
  headers?: string[]
  /** Cookies that mark a logged-in request: such requests never get a shared entry. The `session` plugin's cookie is added whatever its name. @default ['sessionId', '__Host-sessionId', 'sid', 'connect.sid', 'session'] */
  sessionCookies?: string[]
  /** Finds the user of a request for `perUser` routes. @default request.session?.userId ?? request.user?.id */
  user?: (request: any) => string | number | null | undefined
  /** Coalesce concurrent misses across app instances with a Redis lock (in-process coalescing is always on). @default false */
  lock?: boolean
  /** Lifetime of that lock. @default '10s' */
  lockTtl?: Duration
  /** How long other instances wait for the lock holder's entry before running the handler themselves. @default '5s' */
  lockWait?: Duration
  /** Buffer stream responses to cache them (off: a stream is never cached). @default false */
  bufferStreams?: boolean
  /**
   * Serve repeated hits from this instance's memory through the cache toolkit's local tier
   * (which the `cache` options must enable with `local`). An invalidation on another instance
   * reaches this one when its message arrives. @default false
   */
  local?: boolean
}

export interface RouteCacheConfig {
  /** @default the plugin's `ttl` */
  ttl?: Duration
  /** @default the plugin's `staleWhileRevalidate` */
  staleWhileRevalidate?: Duration
  /** @default the plugin's `staleIfError` */
  staleIfError?: Duration
  /** Replaces the plugin's `cacheControl` for this route. @default the plugin's `cacheControl` */
  cacheControl?: CacheControlOption
  /** @default the plugin's `clientNoCache` */
  clientNoCache?: 'ignore' | 'revalidate'
  /** Request headers that vary the response, added to the plugin's. @default [] */
  vary?: string[]
  /** Key entries by user: `true` uses the plugin's `user` resolver, or give a function. Without it, requests with credentials bypass the cache. @default false */
  perUser?: boolean | ((request: any) => string | number | null | undefined)
  /** Replaces path + normalized query in the key. @default path and normalized query */
  key?: (request: any) => string
  /** Tags of the route's entries, for invalidation. @default [] */
  tags?: string[] | ((request: any) => string[] | Promise<string[]>)
  /** @default the plugin's `statuses` */
  statuses?: number[]
  /** @default the plugin's `bufferStreams` */
  bufferStreams?: boolean
  /** @default the plugin's `lock` */
  lock?: boolean
  /** @default the plugin's `local` */
  local?: boolean
}

export interface RouteInvalidation {
  /** Tags to invalidate after a 2xx response: a list, or computed from the request and reply. */
  tags: string[] | ((request: any, reply: any) => string[] | Promise<string[]>)
}

/** Settings shared by the plugin's defaults and each route's resolved config. */
interface ResolvedCacheSettings {
  ttl: number
  /** stale-while-revalidate window, ms. */
  grace: number
  /** stale-if-error window, ms. */
  staleIfError: number
  /** Our Cache-Control for a cached response: from the time left in this cache and whether the entry is shared; undefined sends none. */
  cacheControl: ((leftMs: number, shared: boolean) => string) | undefined
  /** True when a client's no-cache / max-age=0 runs the handler. */
  revalidateOnNoCache: boolean
  tagHeader: { name: TagHeader, separator: string } | undefined
  statuses: readonly number[]
  /** Sorted, lower-case. */
  vary: readonly string[]
  keepHeaders: readonly string[]
  /** Session cookies: they mark credentials, and their renewal does not stop a per-user entry. */
  sessionCookies: CookieNames
  lock: boolean
  lockTtl: number
  lockWait: number
  bufferStreams: boolean
  /** Hits may come from the cache toolkit's local tier. */
  local: boolean
}

export interface ResolvedResponseCacheOptions extends ResolvedCacheSettings {
  user: (request: any) => string | number | null | undefined
  /** Whether the cache toolkit under the response cache has a local tier. */
  localTier: boolean
}

export interface ResolvedRouteCache extends ResolvedCacheSettings {
  /** The route's pattern (`/users/:id`) as `name` gives it, for diagnostics events. */
  route: string
  /** A string for a per-user entry, null for a shared one, undefined to bypass the cache. */
  identify: (request: CacheRequest) => string | null | undefined
  keyOf: ((request: any) => string) | undefined
  tags: (request: CacheRequest) => Promise<string[]>
}

const defaultUser = (request: { session?: { userId?: unknown }, user?: { id?: unknown } }): string | number | null | undefined => {
  const id = request.session?.userId ?? request.user?.id
  return typeof id === 'string' || typeof id === 'number' ? id : undefined
}

function headerList (value: unknown, name: string): string[] {
  if (!Array.isArray(value) || !value.every((h) => typeof h === 'string' && /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(h))) {
    throw new InvalidOptionError(name, 'expected an array of header names')
  }
  return value.map((h: string) => h.toLowerCase())
}

function statusList (value: unknown, name: string): number[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((s) => Number.isInteger(s) && s >= 200 && s < 600)) {
    throw new InvalidOptionError(name, 'expected a non-empty array of HTTP statuses (200-599)')
  }
  return value as number[]
}

const CACHE_CONTROL_KEYS = optionKeys<CacheControlDirectives>({ maxAge: true, sMaxAge: true, staleWhileRevalidate: true, staleIfError: true, noCache: true, mustRevalidate: true, immutable: true })

/** Validates a `cacheControl` option into a function of the time left and whether the entry is shared. */
function cacheControlOf (value: CacheControlOption | undefined, name: string): ResolvedCacheSettings['cacheControl'] {
  if (value === false) return undefined
  if (typeof value === 'string') {
    if (!/^[\x20-\x7e]+$/.test(value) || value.trim() === '') throw new InvalidOptionError(name, 'expected a Cache-Control value of printable characters')
    return () => value
  }
  const d = value ?? {}
  if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new InvalidOptionError(name, 'expected directives ({ maxAge, sMaxAge, ... }), a string or false')
  checkKeys(d, CACHE_CONTROL_KEYS, name)
  const seconds = (v: Duration | 'ttl' | undefined, key: string): number | 'ttl' | undefined =>
    v === undefined || v === 'ttl' ? v : Math.floor(parseDuration(v, `${name}.${key}`) / 1000)
  const maxAge = seconds(d.maxAge, 'maxAge')
  const sMaxAge = seconds(d.sMaxAge, 'sMaxAge')
  const swr = seconds(d.staleWhileRevalidate, 'staleWhileRevalidate')
  const sie = seconds(d.staleIfError, 'staleIfError')
  const noCache = bool(d.noCache, `${name}.noCache`, maxAge === undefined && sMaxAge === undefined)
  const tail = [
    noCache ? 'no-cache' : '',
    swr !== undefined ? `stale-while-revalidate=${swr as number}` : '',
    sie !== undefined ? `stale-if-error=${sie as number}` : '',
    bool(d.mustRevalidate, `${name}.mustRevalidate`, false) ? 'must-revalidate' : '',
    bool(d.immutable, `${name}.immutable`, false) ? 'immutable' : ''
  ].filter((x) => x !== '')
  const age = (v: number | 'ttl', leftMs: number): number => v === 'ttl' ? Math.max(0, Math.floor(leftMs / 1000)) : v
  return (leftMs, shared) => [
    shared ? 'public' : 'private',
    maxAge !== undefined ? `max-age=${age(maxAge, leftMs)}` : '',
    sMaxAge !== undefined && shared ? `s-maxage=${age(sMaxAge, leftMs)}` : '',
    ...tail
  ].filter((x) => x !== '').join(', ')
}

function clientNoCacheOf (value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (value !== 'ignore' && value !== 'revalidate') throw new InvalidOptionError(name, "expected 'ignore' or 'revalidate'")
  return value === 'revalidate'
}

function tagHeaderOf (value: unknown): ResolvedCacheSettings['tagHeader'] {
  if (value === undefined || value === false) return undefined
  if (value === 'surrogate-key') return { name: value, separator: ' ' }
  if (value === 'cache-tag') return { name: value, separator: ',' }
  throw new InvalidOptionError('tagHeader', "expected 'surrogate-key', 'cache-tag' or false")
}

function bool (value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'expected true or false')
  return value
}

const PLUGIN_KEYS = [...REGISTER_KEYS, ...optionKeys<ResponseCacheOptions>({
  ttl: true, staleWhileRevalidate: true, staleIfError: true, cacheControl: true, clientNoCache: true, tagHeader: true, statuses: true, vary: true, headers: true, sessionCookies: true, user: true, lock: true, lockTtl: true, lockWait: true, bufferStreams: true, local: true
})]
const ROUTE_KEYS = optionKeys<RouteCacheConfig>({
  ttl: true, staleWhileRevalidate: true, staleIfError: true, cacheControl: true, clientNoCache: true, vary: true, perUser: true, key: true, tags: true, statuses: true, bufferStreams: true, lock: true, local: true
})
const INVALIDATION_KEYS = optionKeys<RouteInvalidation>({ tags: true })

/**
 * Validates the plugin options and fills the defaults. `credentialCookies` are cookie names
 * learned at run time (the session plugin's), added to `sessionCookies`; `localTier` says
 * whether the cache toolkit under the response cache has a local tier.
 */
export function resolveResponseCacheOptions (opts: ResponseCacheOptions, credentialCookies: CookieNames = { has: () => false }, localTier = false): ResolvedResponseCacheOptions {
  checkKeys(opts, PLUGIN_KEYS, 'responseCache')
  if (opts.user !== undefined && typeof opts.user !== 'function') throw new InvalidOptionError('user', 'expected a function (request) => user id')
  const listed = new Set(cookieList(opts.sessionCookies ?? ['sessionId', '__Host-sessionId', 'sid', 'connect.sid', 'session']))
  return Object.freeze({
    ttl: parseDuration(opts.ttl ?? '1m', 'ttl'),
    grace: parseDuration(opts.staleWhileRevalidate ?? 0, 'staleWhileRevalidate'),
    staleIfError: parseDuration(opts.staleIfError ?? 0, 'staleIfError'),
    cacheControl: cacheControlOf(opts.cacheControl, 'cacheControl'),
    revalidateOnNoCache: clientNoCacheOf(opts.clientNoCache, 'clientNoCache', false),
    tagHeader: tagHeaderOf(opts.tagHeader),
    statuses: Object.freeze(statusList(opts.statuses ?? [200], 'statuses')),
    vary: Object.freeze(headerList(opts.vary ?? [], 'vary').sort()),
    keepHeaders: Object.freeze([...new Set([...DEFAULT_KEPT_HEADERS, ...headerList(opts.headers ?? [], 'headers')])]),
    sessionCookies: { has: (name: string) => listed.has(name) || credentialCookies.has(name) },
    user: opts.user ?? defaultUser,
    lock: bool(opts.lock, 'lock', false),
    lockTtl: parseDuration(opts.lockTtl ?? '10s', 'lockTtl'),
    lockWait: parseDuration(opts.lockWait ?? '5s', 'lockWait'),
    bufferStreams: bool(opts.bufferStreams, 'bufferStreams', false),
    local: localOf(opts.local, 'responseCache.local', false, localTier),
    localTier
  })
}

function localOf (value: unknown, name: string, fallback: boolean, tier: boolean): boolean {
  const local = bool(value, name, fallback)
  if (local && !tier) throw new InvalidOptionError(name, 'needs the cache toolkit\'s local tier: give the cache options `local` too')
  return local
}

/** Validates one route's `config.cache` against the plugin's defaults. `name` prefixes errors. */
export function resolveRouteCache (config: RouteCacheConfig | true, plugin: ResolvedResponseCacheOptions, name: string): ResolvedRouteCache {
  const c: RouteCacheConfig = config === true ? {} : config
  if (c === null || typeof c !== 'object') throw new InvalidOptionError(name, 'expected an object, true or false')
  checkKeys(c, ROUTE_KEYS, name)
  const perUser = c.perUser ?? false
  if (typeof perUser !== 'boolean' && typeof perUser !== 'function') throw new InvalidOptionError(`${name}.perUser`, 'expected true, false or a function')
  if (c.key !== undefined && typeof c.key !== 'function') throw new InvalidOptionError(`${name}.key`, 'expected a function (request) => string')
  const tags = c.tags ?? []
  if (typeof tags !== 'function' && (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))) throw new InvalidOptionError(`${name}.tags`, 'expected an array of strings or a function')
  const userOf = perUser === true ? plugin.user : perUser === false ? undefined : perUser
  const cookieNames = plugin.sessionCookies
  return Object.freeze({
    route: routeOf(name),
    ttl: parseDuration(c.ttl ?? plugin.ttl, `${name}.ttl`),
    grace: parseDuration(c.staleWhileRevalidate ?? plugin.grace, `${name}.staleWhileRevalidate`),
    staleIfError: parseDuration(c.staleIfError ?? plugin.staleIfError, `${name}.staleIfError`),
    cacheControl: c.cacheControl === undefined ? plugin.cacheControl : cacheControlOf(c.cacheControl, `${name}.cacheControl`),
    revalidateOnNoCache: clientNoCacheOf(c.clientNoCache, `${name}.clientNoCache`, plugin.revalidateOnNoCache),
    tagHeader: plugin.tagHeader,
    statuses: c.statuses === undefined ? plugin.statuses : statusList(c.statuses, `${name}.statuses`),
    vary: [...new Set([...plugin.vary, ...headerList(c.vary ?? [], `${name}.vary`)])].sort(),
    keepHeaders: plugin.keepHeaders,
    sessionCookies: plugin.sessionCookies,
    bufferStreams: bool(c.bufferStreams, `${name}.bufferStreams`, plugin.bufferStreams),
    lock: bool(c.lock, `${name}.lock`, plugin.lock),
    lockTtl: plugin.lockTtl,
    lockWait: plugin.lockWait,
    local: localOf(c.local, `${name}.local`, plugin.local, plugin.localTier),
    keyOf: c.key,
    tags: async (request: CacheRequest) => (typeof tags === 'function' ? await tags(request) : tags),
    identify: (request: CacheRequest) => {
      const credentials = request.headers.authorization !== undefined || hasCookie(request.headers.cookie, cookieNames)
      if (userOf === undefined) return credentials ? undefined : null
      const user = userOf(request)
      if (typeof user === 'string' || typeof user === 'number') return String(user)
      return credentials ? undefined : null
    }
  })
}

/** Validates one route's `config.invalidates`. `name` prefixes errors. */
export function checkRouteInvalidation (inv: unknown, name: string): RouteInvalidation {
  const i = inv as RouteInvalidation
  if (i === null || typeof i !== 'object' || (typeof i.tags !== 'function' && !Array.isArray(i.tags))) {
    throw new InvalidOptionError(name, 'expected { tags: string[] | (request, reply) => string[] }')
  }
  checkKeys(i, INVALIDATION_KEYS, name)
  return i
}

function hasCookie (header: string | string[] | undefined, names: CookieNames): boolean {
  if (header === undefined) return false
  const text = Array.isArray(header) ? header.join('; ') : header
  return text.split(';').some((pair) => names.has(pair.split('=')[0]?.trim() ?? ''))
}

function cookieList (value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((c) => typeof c === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(c))) {
    throw new InvalidOptionError('sessionCookies', 'expected an array of cookie names')
  }
  return value as string[]
}

// `name` is `METHODS /pattern config.cache` (routeOptionPath); the pattern is what lies between.
function routeOf (name: string): string {
  const first = name.indexOf(' ')
  const last = name.lastIndexOf(' ')
  return first >= 0 && last > first ? name.slice(first + 1, last) : name
}
