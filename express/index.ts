// `fastify-redis-suite/express`: the suite for Express 5, on the same lib/ as the Fastify
// plugins. express and express-session are optional peers: install them to use this entry.
export { redisSuite } from './suite.js'
export type { ExpressCacheOptions, ExpressRateLimitOptions, ExpressRouteRateLimit, ExpressSessionManager, RedisSuite, RedisSuiteOptions } from './suite.js'
export type { SuiteLogger } from './log.js'
export type { ConnectionConfig, Duration, HealthReport, PoolOptions, Rate } from '../lib/core/index.js'
export { errors } from '../lib/core/index.js'
export type { Cache, CacheOptions } from '../lib/cache/index.js'
export type { Otp, OtpOptions } from '../lib/otp/index.js'
export type { RateLimitApi } from '../lib/rate-limit/index.js'
export type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from '../lib/response-cache/index.js'
export type { SessionCookieOptions, SessionPluginOptions, UserSession } from '../lib/session/index.js'
