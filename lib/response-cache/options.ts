// Options of the response cache, validated once at registration (plugin) or at route
// registration (route config), with every default in one place.
import { checkKeys, InvalidOptionError, optionKeys, parseDuration, REGISTER_KEYS } from '../core/index.js'
import type { Duration } from '../core/index.js'
import { DEFAULT_KEPT_HEADERS } from './http.js'

/** The request as the option functions see it (a Fastify request; lib/ does not import fastify). */
export interface CacheRequest {
  headers: Record<string, string | string[] | undefined>
  url: string
}

export interface ResponseCacheOptions {
  /** How long an entry is fresh. @default '1m' */
  ttl?: Duration
  /** How long past `ttl` a stale entry is still served while one refresh runs. @default 0 */
  staleWhileRevalidate?: Duration
  /** Response statuses that may be stored. @default [200] */
  statuses?: number[]
  /** Request headers whose values become part of every key (e.g. `['accept-language']`; add `'accept-encoding'` when responses are compressed). @default [] */
  vary?: string[]
  /** Response headers kept in an entry besides the defaults (content-type, content-language, content-encoding, content-disposition, link, last-modified, vary, x-content-type-options). @default [] */
  headers?: string[]
  /** Cookies that mark a logged-in request: such requests never get a shared entry. @default ['sessionId', '__Host-sessionId', 'sid', 'connect.sid', 'session'] */
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
}

export interface RouteCacheConfig {
  /** @default the plugin's `ttl` */
  ttl?: Duration
  /** @default the plugin's `staleWhileRevalidate` */
  staleWhileRevalidate?: Duration
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
}

export interface RouteInvalidation {
  /** Tags to invalidate after a 2xx response: a list, or computed from the request and reply. */
  tags: string[] | ((request: any, reply: any) => string[] | Promise<string[]>)
}

/** Settings shared by the plugin's defaults and each route's resolved config. */
interface ResolvedCacheSettings {
  ttl: number
  grace: number
  statuses: readonly number[]
  vary: readonly string[]
  keepHeaders: readonly string[]
  /** Session cookies: they mark credentials, and their renewal does not stop a per-user entry. */
  sessionCookies: readonly string[]
  lock: boolean
  lockTtl: number
  lockWait: number
  bufferStreams: boolean
}

export interface ResolvedResponseCacheOptions extends ResolvedCacheSettings {
  user: (request: any) => string | number | null | undefined
}

export interface ResolvedRouteCache extends ResolvedCacheSettings {
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

function bool (value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'expected true or false')
  return value
}

const PLUGIN_KEYS = [...REGISTER_KEYS, ...optionKeys<ResponseCacheOptions>({
  ttl: true, staleWhileRevalidate: true, statuses: true, vary: true, headers: true, sessionCookies: true, user: true, lock: true, lockTtl: true, lockWait: true, bufferStreams: true
})]
const ROUTE_KEYS = optionKeys<RouteCacheConfig>({
  ttl: true, staleWhileRevalidate: true, vary: true, perUser: true, key: true, tags: true, statuses: true, bufferStreams: true, lock: true
})
const INVALIDATION_KEYS = optionKeys<RouteInvalidation>({ tags: true })

/** Validates the plugin options and fills the defaults. */
export function resolveResponseCacheOptions (opts: ResponseCacheOptions): ResolvedResponseCacheOptions {
  checkKeys(opts, PLUGIN_KEYS, 'responseCache')
  if (opts.user !== undefined && typeof opts.user !== 'function') throw new InvalidOptionError('user', 'expected a function (request) => user id')
  return Object.freeze({
    ttl: parseDuration(opts.ttl ?? '1m', 'ttl'),
    grace: parseDuration(opts.staleWhileRevalidate ?? 0, 'staleWhileRevalidate'),
    statuses: Object.freeze(statusList(opts.statuses ?? [200], 'statuses')),
    vary: Object.freeze(headerList(opts.vary ?? [], 'vary')),
    keepHeaders: Object.freeze([...new Set([...DEFAULT_KEPT_HEADERS, ...headerList(opts.headers ?? [], 'headers')])]),
    sessionCookies: Object.freeze(opts.sessionCookies ?? ['sessionId', '__Host-sessionId', 'sid', 'connect.sid', 'session']),
    user: opts.user ?? defaultUser,
    lock: bool(opts.lock, 'lock', false),
    lockTtl: parseDuration(opts.lockTtl ?? '10s', 'lockTtl'),
    lockWait: parseDuration(opts.lockWait ?? '5s', 'lockWait'),
    bufferStreams: bool(opts.bufferStreams, 'bufferStreams', false)
  })
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
    ttl: parseDuration(c.ttl ?? plugin.ttl, `${name}.ttl`),
    grace: parseDuration(c.staleWhileRevalidate ?? plugin.grace, `${name}.staleWhileRevalidate`),
    statuses: c.statuses === undefined ? plugin.statuses : statusList(c.statuses, `${name}.statuses`),
    vary: [...new Set([...plugin.vary, ...headerList(c.vary ?? [], `${name}.vary`)])],
    keepHeaders: plugin.keepHeaders,
    sessionCookies: plugin.sessionCookies,
    bufferStreams: bool(c.bufferStreams, `${name}.bufferStreams`, plugin.bufferStreams),
    lock: bool(c.lock, `${name}.lock`, plugin.lock),
    lockTtl: plugin.lockTtl,
    lockWait: plugin.lockWait,
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

function hasCookie (header: string | string[] | undefined, names: readonly string[]): boolean {
  if (header === undefined) return false
  const text = Array.isArray(header) ? header.join('; ') : header
  return text.split(';').some((pair) => names.includes(pair.split('=')[0]?.trim() ?? ''))
}
