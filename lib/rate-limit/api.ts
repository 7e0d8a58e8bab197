import { InvalidOptionError, RateLimitUnavailableError } from '../core/index.js'
import { resolvePolicies } from './limiter.js'
import type { Algorithm, Limiter, LimitResult, Policy, RateSpec } from './limiter.js'
import type { LocalLimiter } from './local.js'

/** Programmatic limits for code that is not a route: `consume('booking:' + id, '5/hour')`. */
export interface RateLimitApi {
  /** Counts one use of `key`; resolves `allowed: false` when over the rate. */
  consume: (key: string, rate: RateSpec, opts?: { cost?: number, algorithm?: Algorithm, burst?: number }) => Promise<LimitResult>
  /** What is left for `key`, counting nothing. */
  peek: (key: string, rate: RateSpec, opts?: { cost?: number, algorithm?: Algorithm, burst?: number }) => Promise<LimitResult>
  /** Forgets every count and ban of `key`. */
  reset: (key: string) => Promise<void>
}

/**
 * The programmatic API over a limiter. Redis failures follow the plugin's policy: `'closed'`
 * rejects with FRS_RATE_LIMIT_UNAVAILABLE, `'open'` resolves allowed with no policies (no
 * made-up counts), a local limiter counts in this process. `keyOf` turns the caller's key into
 * a Redis key.
 */
export function createRateLimitApi (limiter: Limiter, keyOf: (key: string) => string, onError: 'open' | 'closed' | LocalLimiter, logFailure: (err: unknown) => void): RateLimitApi {
  const cache = new Map<string, Policy[]>()
  const policies = (rate: RateSpec, o: { algorithm?: Algorithm, burst?: number }): Policy[] => {
    if (typeof rate !== 'string') return resolvePolicies(rate, { name: 'default', algorithm: o.algorithm ?? 'gcra', burst: o.burst }, 'rate')
    const id = `${rate}|${o.algorithm}|${o.burst}`
    let found = cache.get(id)
    if (found === undefined) {
      found = resolvePolicies(rate, { name: 'default', algorithm: o.algorithm ?? 'gcra', burst: o.burst }, 'rate')
      if (cache.size < 1000) cache.set(id, found)
    }
    return found
  }
  const run = async (mode: 'consume' | 'peek', key: string, rate: RateSpec, o: { cost?: number, algorithm?: Algorithm, burst?: number } = {}) => {
    if (typeof key !== 'string' || key === '') throw new InvalidOptionError('key', 'expected a non-empty string')
    const cost = o.cost ?? 1
    if (!Number.isSafeInteger(cost) || cost < 1) throw new InvalidOptionError('cost', 'expected a positive integer')
    const list = policies(rate, o)
    const redisKey = keyOf(key)
    try {
      return await limiter[mode](redisKey, list, cost)
    } catch (err) {
      logFailure(err)
      if (onError === 'closed') throw new RateLimitUnavailableError({ cause: err })
      if (onError === 'open') return { allowed: true, retryAfterMs: 0, banned: false, policies: [] }
      return mode === 'consume' ? onError.consume(redisKey, list, cost) : { allowed: true, retryAfterMs: 0, banned: false, policies: [] }
    }
  }
  return {
    consume: (key, rate, o) => run('consume', key, rate, o),
    peek: (key, rate, o) => run('peek', key, rate, o),
    reset: async (key) => {
      try { await limiter.reset(keyOf(key)) } catch (err) { throw new RateLimitUnavailableError({ cause: err }) }
    }
  }
}
