// The options of Redis-backed sessions, checked once at startup with every default in one
// place; the Fastify plugin (on @fastify/session) and other doors share them.
import { checkKeys, InvalidOptionError, optionKeys, parsePositiveDuration, REGISTER_KEYS } from '../core/index.js'
import type { Duration } from '../core/index.js'
import type { LocalTierOptions } from '../core/index.js'

export interface SessionCookieOptions {
  /** Send the cookie over HTTPS only; `'auto'` follows the request's protocol. @default process.env.NODE_ENV === 'production' */
  secure?: boolean | 'auto'
  /** @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none'
  /** @default true */
  httpOnly?: boolean
  /** @default '/' */
  path?: string
  /** @default undefined (host only) */
  domain?: string
}

export interface SessionPluginOptions {
  /**
   * Cookie signing secret of at least 32 characters, or several, newest first, to rotate (the
   * first signs, all verify). Required: it may come straight from `process.env`, and
   * `undefined` stops startup with an error naming it. @default none (required)
   */
  secret: string | string[] | undefined
  /** Named connection of the core plugin. @default the default connection */
  connection?: string
  /** Key namespace. @default 'default' */
  namespace?: string
  /** @default 'sessionId' */
  cookieName?: string
  /** Name the cookie `__Host-<cookieName>` (needs `secure: true`, path `/`, no domain). @default false */
  hostPrefix?: boolean
  /** Cookie attributes. @default { secure: NODE_ENV === 'production', sameSite: 'lax', httpOnly: true, path: '/' } */
  cookie?: SessionCookieOptions
  /** Idle timeout: the Redis TTL, renewed by each request when `rolling`. @default '1d' */
  idleTimeout?: Duration
  /** Absolute lifetime from creation, which rolling renewal never extends; the cookie expires then. @default '7d' */
  absoluteTimeout?: Duration
  /** Renew the idle timeout on every request (by PEXPIRE inside the read). @default true */
  rolling?: boolean
  /** Store sessions that hold no data (anonymous traffic). @default false */
  saveUninitialized?: boolean
  /** The session field holding the user id, for the per-user index. @default 'userId' */
  userIdField?: string
  /** The most sessions of one user; creating more ends the oldest. @default 100 */
  maxSessionsPerUser?: number
  /** How long a destroyed session id stays blocked against writes still in flight. @default '5m' */
  tombstoneTtl?: Duration
  /**
   * Serve repeated reads of a session from this instance's memory for up to `ttl`. Any change
   * or end of a session (write, logout, revokeUser, from any instance) is published by Redis
   * and drops it from every instance's cache; while that subscription is down nothing is
   * cached. A read served from memory does not renew the idle TTL: an active session is
   * renewed by its next read from Redis, at least once per `ttl`. `true` takes the defaults.
   * @default false
   */
  localCache?: boolean | LocalCacheOption
}

export interface LocalCacheOption {
  /** How long a read may be served from memory. @default '1s' */
  ttl?: Duration
  /** The most sessions held; the oldest go first. @default 10000 */
  max?: number
}

const MIN_SECRET = 32

const KEYS = [...REGISTER_KEYS, ...optionKeys<SessionPluginOptions>({
  secret: true, connection: true, namespace: true, cookieName: true, hostPrefix: true, cookie: true, idleTimeout: true, absoluteTimeout: true, rolling: true, saveUninitialized: true, userIdField: true, maxSessionsPerUser: true, tombstoneTtl: true, localCache: true
})]
const COOKIE_KEYS = optionKeys<SessionCookieOptions>({ secure: true, sameSite: true, httpOnly: true, path: true, domain: true })
const LOCAL_CACHE_KEYS = optionKeys<LocalCacheOption>({ ttl: true, max: true })

/** The session options, checked (an unknown key, a short secret, an impossible cookie stops startup) and with their defaults. */
export function resolveSessionOptions (opts: SessionPluginOptions) {
  checkKeys(opts, KEYS, 'session')
  if (opts.secret === undefined) throw new InvalidOptionError('secret', `it is undefined (an unset environment variable such as SESSION_SECRET?); a secret of at least ${MIN_SECRET} characters is required (or an array of them, newest first)`)
  const secrets: unknown[] = Array.isArray(opts.secret) ? opts.secret : [opts.secret]
  if (secrets.length === 0) throw new InvalidOptionError('secret', `a secret of at least ${MIN_SECRET} characters is required (or an array of them, newest first)`)
  secrets.forEach((s, i) => {
    const name = Array.isArray(opts.secret) ? `secret[${i}]` : 'secret'
    if (typeof s !== 'string' || s.length < MIN_SECRET) throw new InvalidOptionError(name, `expected a string of at least ${MIN_SECRET} characters, got ${typeof s === 'string' ? `${s.length} characters` : typeof s}`)
  })
  const cookie = opts.cookie ?? {}
  checkKeys(cookie, COOKIE_KEYS, 'session.cookie')
  const secure = cookie.secure ?? process.env.NODE_ENV === 'production'
  if (secure !== true && secure !== false && secure !== 'auto') throw new InvalidOptionError('cookie.secure', 'expected true, false or "auto"')
  const sameSite = cookie.sameSite ?? 'lax'
  if (!['lax', 'strict', 'none'].includes(sameSite)) throw new InvalidOptionError('cookie.sameSite', 'expected "lax", "strict" or "none"')
  if (sameSite === 'none' && secure !== true) throw new InvalidOptionError('cookie.sameSite', 'browsers accept sameSite "none" only with secure: true')
  const path = cookie.path ?? '/'
  const hostPrefix = opts.hostPrefix ?? false
  if (hostPrefix && (secure !== true || path !== '/' || cookie.domain !== undefined)) {
    throw new InvalidOptionError('hostPrefix', 'a __Host- cookie needs cookie.secure: true, path "/" and no domain')
  }
  const cookieName = opts.cookieName ?? 'sessionId'
  if (!/^[A-Za-z0-9_-]+$/.test(cookieName)) throw new InvalidOptionError('cookieName', 'expected letters, digits, "_" or "-"')
  const maxSessionsPerUser = opts.maxSessionsPerUser ?? 100
  if (!Number.isSafeInteger(maxSessionsPerUser) || maxSessionsPerUser < 1) throw new InvalidOptionError('maxSessionsPerUser', 'expected a positive integer')
  const userIdField = opts.userIdField ?? 'userId'
  if (typeof userIdField !== 'string' || userIdField === '' || userIdField === 'cookie' || userIdField === '_frs') throw new InvalidOptionError('userIdField', 'expected a field name other than "cookie" and "_frs"')
  const idleTimeout = parsePositiveDuration(opts.idleTimeout ?? '1d', 'idleTimeout')
  const localCache = resolveLocalCache(opts.localCache)
  const absoluteTimeout = parsePositiveDuration(opts.absoluteTimeout ?? '7d', 'absoluteTimeout')
  return Object.freeze({
    secret: secrets as string[],
    connection: opts.connection,
    namespace: opts.namespace,
    cookieName: hostPrefix ? `__Host-${cookieName}` : cookieName,
    cookie: { secure, sameSite, httpOnly: cookie.httpOnly ?? true, path, domain: cookie.domain, maxAge: idleTimeout },
    idleTimeout,
    absoluteTimeout,
    rolling: opts.rolling ?? true,
    saveUninitialized: opts.saveUninitialized ?? false,
    userIdField,
    maxSessionsPerUser,
    tombstoneTtl: parsePositiveDuration(opts.tombstoneTtl ?? '5m', 'tombstoneTtl'),
    localCache
  })
}

function resolveLocalCache (option: unknown): LocalTierOptions | undefined {
  if (option === undefined || option === false) return undefined
  const o = (option === true ? {} : option) as LocalCacheOption
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new InvalidOptionError('localCache', 'expected true, false or { ttl, max }')
  checkKeys(o, LOCAL_CACHE_KEYS, 'session.localCache')
  const max = o.max ?? 10_000
  if (!Number.isSafeInteger(max) || max < 1) throw new InvalidOptionError('localCache.max', 'expected a positive integer')
  return { ttl: parsePositiveDuration(o.ttl ?? '1s', 'localCache.ttl'), max }
}

export type ResolvedSessionOptions = ReturnType<typeof resolveSessionOptions>
