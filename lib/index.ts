// `fastify-redis-suite/core`: the framework-agnostic API. Everything here works on any
// ioredis (or iovalkey) `Redis` or `Cluster`, with or without Fastify.

// keys, durations, errors, values
export { Keyspace, hashed, escapeGlob, escapePart, keyGlob } from './core/index.js'
export type { KeyPart, HashedPart, KeyGlob, KeyspaceOptions } from './core/index.js'
export { parseDuration, parseRate } from './core/index.js'
export type { Duration, DurationUnit, Rate, ParsedRate } from './core/index.js'
export { errors } from './core/index.js'
export { Codec } from './core/index.js'
export type { CodecOptions } from './core/index.js'

// connections and health
export { openPool, resolvePoolOptions, safeRedisOptions, checkHealth, deleteByPattern } from './core/index.js'
export type { ConnectionConfig, ConnectionPool, PoolCore, PoolOptions, RedisClient, SafeDefaults, HealthReport, ConnectionHealth, NodeHealth, DeleteByPatternOptions } from './core/index.js'

// cache toolkit, locks, counters
export { Cache, createCache, acquireLock, withLock, incrKeepTtl, BufferedCounter } from './cache/index.js'
export type {
  CacheOptions, CacheEntry, CacheLockOptions, LocalOptions as CacheLocalOptions, ReadOptions as CacheReadOptions, CacheStatsReport, CounterOptions, EntryOptions, SetEntryOptions,
  Factory, FactoryContext, GetOrSetOptions, LoadResult, LockHandle, LockOptions, BufferedCounterOptions, CounterLogger
} from './cache/index.js'

// rate limiting
export { Limiter, resolvePolicies, normalizeIp } from './rate-limit/index.js'
export type { Algorithm, LimiterOptions, LimitResult, NamedRate, Policy, PolicyDefaults, PolicyState, RateSpec } from './rate-limit/index.js'

// sessions
export { RedisSessionStore } from './session/index.js'
export type { SessionStoreOptions, UserSession } from './session/index.js'

// one-time codes and tokens
export { Otp, resolveOtpOptions, otpLoggerOptions, otpRedactPaths, redactUrl } from './otp/index.js'
export type { OtpOptions, IssueInput, VerifyInput, VerifyResult, OtpRateLimited, OtpRateLimitReason, OtpInvalidInput, CreateTokenInput, TokenRecord } from './otp/index.js'

// diagnostics channels and Prometheus metrics
export { channelNames } from './core/index.js'
export type { CacheErrorEvent, CacheGetOrSetEvent, CacheReadEvent, CircuitEvent, OtpEvent, RateLimitEvent, RedisCallEvent, ResponseCacheEvent, SessionEvent, SuiteEvent } from './core/index.js'
export { createSuiteMetrics, loadPromClient, resolveMetricsOptions } from './metrics/index.js'
export type { MetricsOptions, MetricsRegistry, MetricsScope, SuiteMetrics } from './metrics/index.js'
