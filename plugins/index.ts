export { default as redis } from './redis.js'
export type { RedisPluginOptions, RedisSuiteCore } from './redis.js'
export type { ConnectionConfig } from '../lib/connection.js'
export type { HealthReport, ConnectionHealth, NodeHealth } from '../lib/health.js'
export { Keyspace, hashed, escapeGlob, escapePart } from '../lib/keys.js'
export type { KeyPart, KeyspaceOptions } from '../lib/keys.js'
export { parseDuration, parseRate } from '../lib/duration.js'
export type { Duration, Rate, ParsedRate } from '../lib/duration.js'
export * as errors from '../lib/errors.js'

// cache
export { default as cache } from './cache.js'
export type { CachePluginOptions } from './cache.js'
export { Cache, createCache } from '../lib/cache.js'
export type { CacheEntry, CacheOptions, CacheStatsReport, CounterOptions, EntryOptions, Factory, FactoryContext, GetOrSetOptions, LoadResult, CacheLockOptions, SetEntryOptions } from '../lib/cache.js'
export { Codec } from '../lib/codec.js'

// response cache
export { default as responseCache } from './response-cache.js'
export type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from './response-cache.js'

// session
export { default as session } from './session.js'
export type { SessionPluginOptions, SessionCookieOptions, SessionManager } from './session.js'
export { RedisSessionStore } from '../lib/session-store.js'
export type { UserSession } from '../lib/session-users.js'

// rate limit
export { default as rateLimit } from './rate-limit.js'
export type { RateLimitOptions, RouteRateLimit, RateLimitApi } from './rate-limit.js'
export { Limiter, resolvePolicies } from '../lib/limiter.js'
export type { Algorithm, NamedRate, RateSpec, Policy, PolicyState, LimitResult } from '../lib/limiter.js'
export { normalizeIp } from '../lib/ip.js'

// otp
export { default as otp } from './otp.js'
export type { OtpPluginOptions } from './otp.js'
export { Otp } from '../lib/otp.js'
export type { IssueInput, VerifyInput, VerifyResult, OtpRateLimited, OtpRateLimitReason } from '../lib/otp.js'
export { resolveOtpOptions } from '../lib/otp-options.js'
export type { OtpOptions } from '../lib/otp-options.js'
export type { CreateTokenInput, TokenRecord } from '../lib/otp-tokens.js'
export { otpLoggerOptions, otpRedactPaths, redactUrl } from '../lib/otp-logging.js'

// suite
export { default as suite } from './suite.js'
export type { SuiteOptions } from './suite.js'
