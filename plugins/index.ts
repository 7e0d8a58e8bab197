// `fastify-redis-suite`: the Fastify plugins, their options and the types of what they
// decorate. The framework-agnostic API is `fastify-redis-suite/core`.

export { default as redis } from './redis.js'
export type { RedisPluginOptions, RedisSuiteCore } from './redis.js'
export type { ConnectionConfig } from '../lib/core/index.js'

export { default as cache } from './cache.js'
export type { CachePluginOptions } from './cache.js'

export { default as responseCache } from './response-cache.js'
export type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from './response-cache.js'

export { default as session } from './session.js'
export type { SessionPluginOptions, SessionCookieOptions, SessionManager } from './session.js'

export { default as rateLimit } from './rate-limit.js'
export type { RateLimitOptions, RouteRateLimit, RateLimitApi } from './rate-limit.js'

export { default as otp } from './otp.js'
export type { OtpPluginOptions } from './otp.js'
export { otpLoggerOptions, otpRedactPaths } from '../lib/otp/index.js'

export { default as metrics } from './metrics.js'
export type { MetricsPluginOptions, MetricsRegistry, SuiteMetrics } from './metrics.js'

export { default as suite } from './suite.js'
export type { SuiteOptions } from './suite.js'

// What the decorators hold, and the errors the plugins throw or send.
export { errors } from '../lib/core/index.js'
export type { Duration, Rate, HealthReport, ConnectionHealth, NodeHealth } from '../lib/core/index.js'
export { channelNames } from '../lib/core/index.js'
export type { CacheErrorEvent, CacheGetOrSetEvent, CacheReadEvent, CircuitEvent, OtpEvent, RateLimitEvent, RedisCallEvent, ResponseCacheEvent, SessionEvent, SuiteEvent } from '../lib/core/index.js'
export type { Cache, CacheOptions } from '../lib/cache/index.js'
export type { Otp, OtpOptions } from '../lib/otp/index.js'
export type { UserSession } from '../lib/session/index.js'
