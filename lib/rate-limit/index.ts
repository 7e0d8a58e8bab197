// Rate limiting: policies (GCRA, windows), the limiter, its headers and client addresses.
export { createRateLimitApi } from './api.js'
export type { RateLimitApi } from './api.js'
export { rateLimitHeaders } from './headers.js'
export type { HeaderMode } from './headers.js'
export { normalizeIp } from './ip.js'
export { isAlgorithm, Limiter, resolvePolicies } from './limiter.js'
export type { Algorithm, LimiterOptions, LimitResult, NamedRate, Policy, PolicyDefaults, PolicyState, RateSpec } from './limiter.js'
