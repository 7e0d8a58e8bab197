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

// response cache

// session

// rate limit
export { default as rateLimit } from './rate-limit.js'
export type { RateLimitOptions, RouteRateLimit, RateLimitApi } from './rate-limit.js'
export { Limiter, resolvePolicies } from '../lib/limiter.js'
export type { Algorithm, NamedRate, RateSpec, Policy, PolicyState, LimitResult } from '../lib/limiter.js'
export { normalizeIp } from '../lib/ip.js'

// otp

// suite
