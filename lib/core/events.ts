// The diagnostics channels (node:diagnostics_channel) that the features publish on: what the
// cache, response cache, limiter, sessions and OTP did, and how long their Redis calls took.
// Tracing (OpenTelemetry) and the metrics feature subscribe; nothing here depends on either.
// Publishers check `hasSubscribers` before they build a payload, so an app that nobody
// observes pays one property read per operation. No payload holds a key, a session id, a
// cookie, a code, a token, an IP address or a user id: only names the app chose (routes,
// namespaces, purposes, policies, connections) and outcomes.
import { channel } from 'node:diagnostics_channel'
import type { Channel } from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'

/** The name of every channel the suite publishes on. */
export const channelNames = Object.freeze({
  /** One cache read (get, getMany, getEntry, has; the response cache's lookups): {@link CacheReadEvent}. */
  cacheRead: 'fastify-redis-suite:cache:read',
  /** How a getOrSet was answered, per caller (callers of one key share one read): {@link CacheGetOrSetEvent}. */
  cacheGetOrSet: 'fastify-redis-suite:cache:get-or-set',
  /** A cache operation other than a read that failed open: {@link CacheErrorEvent}. */
  cacheError: 'fastify-redis-suite:cache:error',
  /** The cache's circuit breaker changed state: {@link CircuitEvent}. */
  circuit: 'fastify-redis-suite:cache:circuit',
  /** How the response cache answered a request (its X-Cache): {@link ResponseCacheEvent}. */
  responseCache: 'fastify-redis-suite:response-cache',
  /** A rate-limit check of a request: {@link RateLimitEvent}. */
  rateLimit: 'fastify-redis-suite:rate-limit',
  /** A session store operation: {@link SessionEvent}. */
  session: 'fastify-redis-suite:session',
  /** A one-time code issued or verified: {@link OtpEvent}. */
  otp: 'fastify-redis-suite:otp',
  /** One Redis call of the suite on the request path and how long it took: {@link RedisCallEvent}. */
  redisCall: 'fastify-redis-suite:redis:call'
})

/** What every payload carries: the key prefix of the suite that published it (`redis.prefix`). */
export interface SuiteEvent { prefix: string }

export interface CacheReadEvent extends SuiteEvent {
  /** `'default'` for the root namespace, `'feed/today'` for nested ones; the response cache reads in `'http'`. */
  namespace: string
  /** Keys read, and how each was found. */
  keys: number
  hits: number
  misses: number
  stale: number
  /** Keys not read because Redis failed (the read failed open as misses). */
  errors: number
}

export interface CacheGetOrSetEvent extends SuiteEvent {
  namespace: string
  /** `bypass`: Redis failed, the value was computed and not stored. */
  state: 'hit' | 'stale' | 'miss' | 'bypass'
}

export interface CacheErrorEvent extends SuiteEvent {
  namespace: string
  /** `write`, `delete`, `ttl`, `expire`, `invalidate`, … */
  operation: string
  /** The message of the Redis error (never the error object, which holds the command's arguments). */
  error: string
}

export interface CircuitEvent extends SuiteEvent {
  /** The connection the cache uses. */
  connection: string
  /** `open`: calls skip Redis; `half-open`: one call probes it; `closed`: calls go to Redis. */
  state: 'closed' | 'open' | 'half-open'
}

export interface ResponseCacheEvent extends SuiteEvent {
  /** The route's pattern (`/users/:id`), never the request's URL. */
  route: string
  method: string
  result: 'HIT' | 'MISS' | 'STALE' | 'BYPASS'
  /** True for the request the suite replays to refresh a stale entry. */
  refresh: boolean
}

export interface RateLimitEvent extends SuiteEvent {
  /** The route's pattern (`/users/:id`), never the request's URL. */
  route: string
  /** `GET`, or methods joined with `,` for a route of several. */
  method: string
  /** The names of the policies of the budget checked, joined with `,` (`'100/hour'`, `'minute,day'`). */
  policy: string
  /** `limited` answered 429; `dry-run` would have; `failed-open`/`failed-closed` (503): Redis failed. */
  outcome: 'allowed' | 'limited' | 'dry-run' | 'failed-open' | 'failed-closed'
  /** Where the verdict came from: Redis, the block cache (a client already refused), or the in-process limiter (`onRedisError: 'local'`). */
  source: 'redis' | 'block-cache' | 'local'
  cost: number
}

export interface SessionEvent extends SuiteEvent {
  /**
   * `read` (a session loaded or not found), `create` and `update` (written to Redis),
   * `unchanged` (nothing to write), `refused` (the session had ended meanwhile), `revoke`
   * (logout, regenerate or revokeUser ended one), `error` (Redis failed).
   */
  operation: 'read' | 'create' | 'update' | 'unchanged' | 'refused' | 'revoke' | 'error'
  /** For reads: `local` when the local cache answered. */
  source?: 'redis' | 'local'
  /** For reads: whether a session was found. */
  found?: boolean
}

export interface OtpEvent extends SuiteEvent {
  operation: 'issue' | 'verify'
  /** The purpose the app gave (`'login'`). */
  purpose: string
  /**
   * issue: `issued`, or why it was refused (`cooldown`, `daily-cap`, `locked`);
   * verify: `ok`, `invalid` (a wrong code), `expired`, `locked`; either: `error` (Redis failed).
   */
  result: 'issued' | 'cooldown' | 'daily-cap' | 'locked' | 'ok' | 'invalid' | 'expired' | 'error'
}

export interface RedisCallEvent extends SuiteEvent {
  /** The connection's name in the `redis` plugin (`default`, `sessions`, …). */
  connection: string
  /** What the call did: `cache`, `rate-limit`, `session`, `otp`, or `batch` for a batched script call. */
  feature: string
  /** From sending to the reply (or the failure), ms. */
  durationMs: number
  ok: boolean
}

/** The channels, made once. */
export const channels = Object.freeze({
  cacheRead: channel(channelNames.cacheRead) as TypedChannel<CacheReadEvent>,
  cacheGetOrSet: channel(channelNames.cacheGetOrSet) as TypedChannel<CacheGetOrSetEvent>,
  cacheError: channel(channelNames.cacheError) as TypedChannel<CacheErrorEvent>,
  circuit: channel(channelNames.circuit) as TypedChannel<CircuitEvent>,
  responseCache: channel(channelNames.responseCache) as TypedChannel<ResponseCacheEvent>,
  rateLimit: channel(channelNames.rateLimit) as TypedChannel<RateLimitEvent>,
  session: channel(channelNames.session) as TypedChannel<SessionEvent>,
  otp: channel(channelNames.otp) as TypedChannel<OtpEvent>,
  redisCall: channel(channelNames.redisCall) as TypedChannel<RedisCallEvent>
})

/** A channel whose payloads have one type. */
export type TypedChannel<T> = Omit<Channel, 'publish'> & { publish: (message: T) => void }

// What the pool knows of each of its clients, for the payloads of code that holds only a client.
const described = new WeakMap<object, { connection: string, prefix: string }>()

/** Records the name and key prefix of a pool's client (the pool calls it for each connection). */
export function describeClient (client: object, connection: string, prefix: string): void {
  described.set(client, { connection, prefix })
}

/** The name and prefix of a client; a client no pool opened is `unnamed`, prefix `''`. */
export function clientLabels (client: object): { connection: string, prefix: string } {
  return described.get(client) ?? { connection: 'unnamed', prefix: '' }
}

/**
 * Runs `call`, a Redis call of `feature` on `client`, and publishes its duration on
 * `redisCall` when someone listens; otherwise it only runs `call`.
 */
export function timedCall<T> (client: object, feature: string, call: () => Promise<T>): Promise<T> {
  if (!channels.redisCall.hasSubscribers) return call()
  const started = performance.now()
  const done = (ok: boolean) => {
    const { connection, prefix } = clientLabels(client)
    channels.redisCall.publish({ prefix, connection, feature, durationMs: performance.now() - started, ok })
  }
  return call().then((value) => { done(true); return value }, (err: unknown) => { done(false); throw err })
}
