import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { checkKeys, InvalidOptionError, optionKeys, REGISTER_KEYS } from '../lib/core/index.js'
import cachePlugin from './cache.js'
import type { CachePluginOptions } from './cache.js'
import metricsPlugin from './metrics.js'
import type { MetricsPluginOptions } from './metrics.js'
import otpPlugin from './otp.js'
import type { OtpPluginOptions } from './otp.js'
import rateLimitPlugin from './rate-limit.js'
import type { RateLimitOptions } from './rate-limit.js'
import redisPlugin from './redis.js'
import type { RedisPluginOptions } from './redis.js'
import responseCachePlugin from './response-cache.js'
import type { ResponseCacheOptions } from './response-cache.js'
import sessionPlugin from './session.js'
import type { SessionPluginOptions } from './session.js'

/**
 * Every plugin of the suite from one options object. The core plugin is always registered;
 * `cache` is on unless `false`; the others are on when their options are given (sessions and
 * OTP need a secret, so they cannot be on by default).
 */
export interface SuiteOptions {
  /** The core plugin's options (connections, prefix, timeouts, health route). @default {} */
  redis?: RedisPluginOptions
  /** `fastify.cache`. @default {} (on) */
  cache?: CachePluginOptions | false
  /** Route-level response caching; needs `cache`. @default off */
  responseCache?: ResponseCacheOptions | true | false
  /** Redis sessions on @fastify/session. @default off */
  session?: SessionPluginOptions | false
  /** Rate limiting. @default off */
  rateLimit?: RateLimitOptions | true | false
  /** One-time codes and link tokens. @default off */
  otp?: OtpPluginOptions | false
  /** Prometheus metrics of every part (needs prom-client); `true` for the defaults. @default off */
  metrics?: MetricsPluginOptions | true | false
}

const KEYS = [...REGISTER_KEYS, ...optionKeys<SuiteOptions>({ redis: true, cache: true, responseCache: true, session: true, rateLimit: true, otp: true, metrics: true })]

const suite: FastifyPluginAsync<SuiteOptions> = async (fastify, opts) => {
  checkKeys(opts, KEYS, 'suite')
  await fastify.register(redisPlugin, opts.redis ?? {})
  if (opts.metrics !== undefined && opts.metrics !== false) await fastify.register(metricsPlugin, opts.metrics === true ? {} : opts.metrics)
  if (opts.cache !== false) await fastify.register(cachePlugin, opts.cache ?? {})
  if (opts.responseCache !== undefined && opts.responseCache !== false) {
    if (opts.cache === false) throw new InvalidOptionError('responseCache', 'needs the cache: remove "cache: false"')
    await fastify.register(responseCachePlugin, opts.responseCache === true ? {} : opts.responseCache)
  }
  // Sessions before rate limiting, so that limits can key by the session's user.
  if (opts.session !== undefined && opts.session !== false) await fastify.register(sessionPlugin, opts.session)
  if (opts.rateLimit !== undefined && opts.rateLimit !== false) await fastify.register(rateLimitPlugin, opts.rateLimit === true ? {} : opts.rateLimit)
  if (opts.otp !== undefined && opts.otp !== false) await fastify.register(otpPlugin, opts.otp)
}

export default fp(suite, { name: 'fastify-redis-suite', fastify: '5.x' })
