// `redisSuite()`: the shared connections (the `redis` plugin's pool, same options and safe
// defaults) and every feature on them, for Express. What it returns hands out middleware; the
// features' logic is lib/'s, as for the Fastify plugins.
import type { Cluster, Redis } from 'ioredis'
import type { RequestHandler, Response } from 'express'
import { CACHE_OPTION_KEYS, createCache, resolveCacheOptions } from '../lib/cache/index.js'
import type { Cache, CacheOptions } from '../lib/cache/index.js'
import { checkKeys, InvalidOptionError, openPool, optionKeys, REGISTER_KEYS, resolvePoolOptions } from '../lib/core/index.js'
import type { HealthReport, PoolOptions } from '../lib/core/index.js'
import { Otp, resolveOtpOptions } from '../lib/otp/index.js'
import type { OtpOptions } from '../lib/otp/index.js'
import { createRateLimitGuard, resolveRateLimitOptions } from '../lib/rate-limit/index.js'
import type { RateLimitApi, RateLimitOptions, RouteRateLimit } from '../lib/rate-limit/index.js'
import { resolveResponseCacheOptions, ResponseCacheEngine, ResponseStore } from '../lib/response-cache/index.js'
import type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from '../lib/response-cache/index.js'
import { createSessionStore, resolveSessionOptions, sessionHealth } from '../lib/session/index.js'
import type { SessionPluginOptions, UserSession } from '../lib/session/index.js'
import type { Store } from 'express-session'
import { consoleLogger } from './log.js'
import type { SuiteLogger } from './log.js'
import { rateLimitMiddleware } from './rate-limit.js'
import type { LimitedExpressRequest } from './rate-limit.js'
import { cacheMiddleware, invalidatesMiddleware, replayOverHttp } from './response-cache.js'
import { createExpressSessions } from './session.js'

/** The cache toolkit's options, on a named connection. */
export interface ExpressCacheOptions extends CacheOptions {
  /** The named connection to cache on. @default 'default' */
  connection?: string
}

/** The rate limiter's app-wide options (rates, scopes, failure policy), as the Fastify plugin takes them. */
export type ExpressRateLimitOptions = Omit<RateLimitOptions<LimitedExpressRequest, Response>, 'hook'>
/** One route's limits, given to `suite.rateLimit()`. */
export type ExpressRouteRateLimit = RouteRateLimit<LimitedExpressRequest>

/**
 * Every feature from one options object. The connections are always opened; `cache` is on
 * unless `false`; the others are on when their options are given (sessions and OTP need a
 * secret). The options are those of the Fastify plugins of the same names.
 */
export interface RedisSuiteOptions {
  /** The shared connections: URL, ioredis options, Cluster, Sentinel or an adopted `client`; named `connections`; prefix and timeouts. @default {} (REDIS_URL, else redis://127.0.0.1:6379) */
  redis?: PoolOptions
  /** The cache toolkit (`suite.cache`). @default {} (on) */
  cache?: ExpressCacheOptions | false
  /** Defaults of `suite.responseCache()`; needs `cache`. @default off (`suite.responseCache` throws) */
  responseCache?: ResponseCacheOptions | true | false
  /** App-wide rates, scopes and failure policy of `suite.rateLimit()`. @default off (`suite.rateLimit` throws) */
  rateLimit?: ExpressRateLimitOptions | true | false
  /** Redis sessions on express-session (`suite.session`). @default off */
  session?: SessionPluginOptions | false
  /** One-time codes and link tokens (`suite.otp`). @default off */
  otp?: OtpOptions | false
  /** Where warnings (Redis failures, at most one line per 10 s each) and notices go; pino fits. @default warnings to console.warn */
  log?: SuiteLogger
}

/** Sessions seen from the server side, as `fastify.sessions`. */
export interface ExpressSessionManager {
  /** The middleware: express-session on Redis. Mount it before the routes (and the limiter, to limit by user). */
  middleware: RequestHandler
  /** The express-session Store alone. */
  store: Store
  /** Live sessions of a user, oldest first. */
  listForUser: (userId: string | number) => Promise<UserSession[]>
  /** Ends every session of a user on every instance (log out everywhere); returns how many were live. */
  revokeUser: (userId: string | number) => Promise<number>
  /** Ends one session by id. */
  destroy: (sessionId: string) => Promise<void>
}

export interface RedisSuite {
  /** The default connection. */
  redis: Redis | Cluster
  /** A connection by name; no name gives the default one. Throws FRS_UNKNOWN_CONNECTION for an unknown name. */
  connection: (name?: string) => Redis | Cluster
  /** Pings every connection and reports latency, version, role, memory, key counts and the features' stats. */
  health: () => Promise<HealthReport>
  /** A route handler answering `health()`: 200 when every connection is up, else 503. */
  healthHandler: RequestHandler
  /** The cache toolkit (see the cache docs); throws when `cache: false`. */
  readonly cache: Cache
  /** One-time codes and link tokens; throws unless `otp` is configured. */
  readonly otp: Otp
  /** Sessions; throws unless `session` is configured. */
  readonly sessions: ExpressSessionManager
  /** Programmatic rate limits; throws unless `rateLimit` is configured. */
  readonly limits: RateLimitApi
  /** Middleware that caches a GET route's responses (`true`/no argument: the defaults). */
  responseCache: (config?: RouteCacheConfig | true) => RequestHandler
  /** Middleware for a mutating route: after a 2xx, and before it is sent, these tags are invalidated. */
  invalidates: (invalidation: RouteInvalidation) => RequestHandler
  /** Makes every cached variant of one path miss. */
  invalidateUrl: (path: string) => Promise<void>
  /** Makes every entry with one of the tags miss. */
  invalidateTags: (tags: string[]) => Promise<void>
  /** Middleware that limits the route it is on (or, with `app.use`, every request it sees). No argument: the app-wide rates. */
  rateLimit: (config?: ExpressRouteRateLimit) => RequestHandler
  /** Flushes buffered counters, closes local caches and the connections it opened (never an adopted client). */
  close: () => Promise<void>
}

const KEYS = optionKeys<RedisSuiteOptions>({ redis: true, cache: true, responseCache: true, rateLimit: true, session: true, otp: true, log: true })
const CACHE_KEYS = [...CACHE_OPTION_KEYS, 'connection']

// Fastify's register options mean nothing here: refused like any unknown key.
function noRegisterKeys (opts: object, section: string): void {
  for (const key of REGISTER_KEYS) {
    if ((opts as Record<string, unknown>)[key] !== undefined) throw new InvalidOptionError(`${section}.${key}`, 'unknown option')
  }
}

function off (feature: string, option: string): never {
  throw new InvalidOptionError(option, `${feature} is off: give redisSuite({ ${option}: … })`)
}

/** Opens (or adopts) the connections, waits until they are ready, and sets up the features asked for. */
export async function redisSuite (opts: RedisSuiteOptions = {}): Promise<RedisSuite> {
  checkKeys(opts, KEYS, 'redisSuite')
  const log = opts.log ?? consoleLogger
  // Validate every section before opening anything.
  const cacheOpts = opts.cache === false ? undefined : opts.cache ?? {}
  if (cacheOpts !== undefined) {
    checkKeys(cacheOpts, CACHE_KEYS, 'cache')
    const { connection: _c, ...rest } = cacheOpts
    resolveCacheOptions(rest)
  }
  const rcOpts = opts.responseCache === undefined || opts.responseCache === false ? undefined : opts.responseCache === true ? {} : opts.responseCache
  if (rcOpts !== undefined && cacheOpts === undefined) throw new InvalidOptionError('responseCache', 'needs the cache: remove "cache: false"')
  if (rcOpts !== undefined) noRegisterKeys(rcOpts, 'responseCache')
  const rlOpts = opts.rateLimit === undefined || opts.rateLimit === false ? undefined : opts.rateLimit === true ? {} : opts.rateLimit
  if (rlOpts !== undefined) {
    noRegisterKeys(rlOpts, 'rateLimit')
    if ((rlOpts as { hook?: unknown }).hook !== undefined) throw new InvalidOptionError('rateLimit.hook', 'is for Fastify; in Express the limiter runs where its middleware is mounted (after the session middleware, to limit by user)')
  }
  const rateOptions = rlOpts === undefined ? undefined : resolveRateLimitOptions<LimitedExpressRequest, Response>(rlOpts)
  if (opts.session !== undefined && opts.session !== false) noRegisterKeys(opts.session, 'session')
  const sessionOptions = opts.session === undefined || opts.session === false ? undefined : resolveSessionOptions(opts.session)
  if (opts.otp !== undefined && opts.otp !== false) noRegisterKeys(opts.otp, 'otp')
  const otpOptions = opts.otp === undefined || opts.otp === false ? undefined : resolveOtpOptions(opts.otp)
  const pool = await openPool(resolvePoolOptions(opts.redis), log)
  const closers: Array<() => Promise<void>> = []
  try {
    const core = pool.core
    let cache: Cache | undefined
    if (cacheOpts !== undefined) {
      const { connection, ...rest } = cacheOpts
      const c = cache = createCache(pool.connection(connection), { ...rest, keyspace: core.keyspace('cache'), commandTimeout: core.commandTimeout, log })
      core.addHealthSection('cache', () => c.stats())
      closers.push(() => c.close())
    }
    let sessions: ExpressSessionManager | undefined
    if (sessionOptions !== undefined) {
      core.credentialCookies.add(sessionOptions.cookieName)
      const { store, cache: local } = createSessionStore({ client: pool.connection(sessionOptions.connection), keyspace: core.keyspace('sess', sessionOptions.namespace), options: sessionOptions, log })
      if (local !== undefined) closers.push(() => local.close())
      const express = await createExpressSessions(store, sessionOptions)
      sessions = {
        middleware: express.middleware,
        store: express.store,
        listForUser: (userId) => store.users.list(userId),
        revokeUser: (userId) => store.users.revoke(userId),
        destroy: async (sessionId) => { await store.destroySession(sessionId) }
      }
      core.addHealthSection('session', () => sessionHealth(store, local))
    }
    const guard = rateOptions === undefined
      ? undefined
      : createRateLimitGuard<LimitedExpressRequest, Response>({ client: pool.connection(rateOptions.connection), commandTimeout: core.commandTimeout, keyspace: core.keyspace('rl', rateOptions.namespace), options: rateOptions, log })
    if (guard !== undefined) core.addHealthSection('rateLimit', () => ({ ...guard.stats }))
    const rcResolved = rcOpts === undefined ? undefined : resolveResponseCacheOptions(rcOpts, core.credentialCookies, cache?.core.local !== undefined)
    const engine = rcResolved === undefined || cache === undefined
      ? undefined
      : new ResponseCacheEngine({ store: new ResponseStore(cache.namespace('http')), replay: replayOverHttp, log })
    const otp = otpOptions === undefined ? undefined : new Otp(pool.connection(otpOptions.connection), core.keyspace('otp', otpOptions.namespace), otpOptions, log)

    let closed: Promise<void> | undefined
    return {
      redis: pool.connection(),
      connection: pool.connection,
      health: pool.health,
      healthHandler: (_req, res, next) => {
        pool.health().then((report) => { res.status(report.ok ? 200 : 503).json(report) }, next)
      },
      get cache () { return cache ?? off('The cache', 'cache') },
      get otp () { return otp ?? off('OTP', 'otp') },
      get sessions () { return sessions ?? off('Sessions', 'session') },
      get limits () { return guard?.api ?? off('Rate limiting', 'rateLimit') },
      responseCache: (config) => cacheMiddleware(engine ?? off('The response cache', 'responseCache'), rcResolved as NonNullable<typeof rcResolved>, config),
      invalidates: (invalidation) => invalidatesMiddleware(engine ?? off('The response cache', 'responseCache'), invalidation),
      invalidateUrl: (path) => (engine ?? off('The response cache', 'responseCache')).invalidateUrl(path),
      invalidateTags: (tags) => (engine ?? off('The response cache', 'responseCache')).invalidateTags(tags),
      rateLimit: (config) => rateLimitMiddleware(guard ?? off('Rate limiting', 'rateLimit'), config),
      close: () => {
        closed ??= (async () => {
          await Promise.allSettled(closers.map((c) => c()))
          await pool.close()
        })()
        return closed
      }
    }
  } catch (err) {
    await Promise.allSettled(closers.map((c) => c()))
    await pool.close()
    throw err
  }
}
