// The rate limiter of HTTP routes, whatever the framework: which budget a request spends, and
// what to answer (pass with headers, 429, or 503 when Redis fails and the policy is to fail
// closed). A door (a Fastify hook, an Express middleware) asks `check()`, applies the verdict
// and, on routes that count by outcome, calls `settle(statusCode)` after the response.
import { channels, hashed, RateLimitedError, RateLimitUnavailableError, throttledWarn } from '../core/index.js'
import type { Keyspace, KeyPart, RateLimitEvent, WarnLogger } from '../core/index.js'
import { createRateLimitApi } from './api.js'
import type { RateLimitApi } from './api.js'
import { compileRoute } from './config.js'
import type { LimitedRequest, ResolvedRateLimitOptions, RouteRateLimit, Spend } from './config.js'
import { rateLimitHeaders } from './headers.js'
import { normalizeIp } from './ip.js'
import type { Limiter, LimitResult, Policy } from './limiter.js'
import { BlockCache, LocalLimiter } from './local.js'

/** The problem type of draft-ietf-httpapi-ratelimit-headers-10 for a request over a quota. */
export const QUOTA_EXCEEDED = 'https://iana.org/assignments/http-problem-types#quota-exceeded'

/** A problem details body (RFC 9457), as the 429 and 503 send it. */
export interface ProblemBody {
  type: string
  title: string
  status: number
  code: string
  detail: string
  /** 429: the names of the policies that refused the request (all of them during a ban). */
  'violated-policies'?: string[]
  retryAfter?: number
}

/** What to do with a request: let it through (with headers to send), or answer for it. */
export type Verdict =
  | { action: 'pass', headers?: Record<string, string>, settle?: (statusCode: number) => void }
  | { action: 'refuse', status: 429, headers: Record<string, string>, body: ProblemBody, result: LimitResult }
  | { action: 'refuse', status: 503, headers: Record<string, string>, body: ProblemBody }

/** The checks of one route. */
export interface RouteGuard<Req> {
  /** `METHODS /url` (GET and HEAD share one counter). */
  id: string
  /** True when the route counts by outcome: the door calls a passing verdict's `settle`. */
  settles: boolean
  check: (request: Req) => Promise<Verdict>
}

/** The guard logs through `warn` (Redis failures) and `info` (dry-run refusals). */
export interface GuardLogger extends WarnLogger { info: (obj: object, msg: string) => void }

export interface RateLimitGuardOptions<Req extends LimitedRequest, Reply> {
  limiter: Limiter
  keyspace: Keyspace
  options: ResolvedRateLimitOptions<Req, Reply>
  log: GuardLogger
}

/** Clients that `onRedisError: 'local'` counts in one process at most. */
export const LOCAL_LIMITER_MAX = 10_000

const PROBLEM_TYPE = { 'content-type': 'application/problem+json' }

/** The limiter of one app's routes: counts, stats and the programmatic API share it. */
export class RateLimitGuard<Req extends LimitedRequest, Reply = unknown> {
  readonly options: ResolvedRateLimitOptions<Req, Reply>
  readonly stats = { allowed: 0, limited: 0, blockedLocally: 0, dryRunRefused: 0, refunded: 0, failedOpen: 0, failedClosed: 0, failedLocal: 0 }
  readonly api: RateLimitApi
  readonly #limiter: Limiter
  readonly #keyspace: Keyspace
  readonly #log: GuardLogger
  readonly #logFailure: (err: unknown) => void
  readonly #blocks: BlockCache | undefined
  readonly #local: LocalLimiter | undefined
  // one key builder per budget (its tag's fixed parts escaped once)
  readonly #keyBuilders = new Map<string, (...rest: KeyPart[]) => string>()

  constructor (o: RateLimitGuardOptions<Req, Reply>) {
    this.options = o.options
    this.#limiter = o.limiter
    this.#keyspace = o.keyspace
    this.#log = o.log
    this.#logFailure = failureLog(o.log, o.options.onRedisError)
    this.#blocks = o.options.blockCache === false ? undefined : new BlockCache(o.options.blockCache)
    this.#local = o.options.onRedisError === 'local' ? new LocalLimiter(LOCAL_LIMITER_MAX) : undefined
    const onError = this.#local ?? (o.options.onRedisError === 'closed' ? 'closed' : 'open')
    this.api = createRateLimitApi(o.limiter, (key) => o.keyspace.taggedKey(['k', key]), onError, this.#logFailure)
  }

  /**
   * The checks of a route, or null when no limit applies to it (`false`, or no config and no
   * plugin-wide rate). Throws FRS_INVALID_OPTION for a bad config, named by `at`.
   */
  forRoute (config: RouteRateLimit<Req> | false | undefined, methods: string | readonly string[], url: string, at: string): RouteGuard<Req> | null {
    if (config === false || (config === undefined && !this.options.global)) return null
    // HEAD is GET without a body (Fastify adds a HEAD route for each GET): one counter for both.
    const id = `${[...new Set([methods].flat().map((m) => (m === 'HEAD' ? 'GET' : m)))].join(',')} ${url}`
    const route = compileRoute(this.options as ResolvedRateLimitOptions<Req, unknown>, config ?? {}, id, at)
    const anonKey = route.anon === null ? undefined : this.#keyBuilder(route.anon)
    const userKey = route.user === null ? undefined : this.#keyBuilder(route.user)
    const { options, stats } = this
    const blocks = route.dryRun ? undefined : this.#blocks
    const prefix = this.#keyspace.prefix
    const method = id.slice(0, id.indexOf(' '))
    const publish = (outcome: RateLimitEvent['outcome'], source: RateLimitEvent['source'], policies: readonly Policy[], cost: number): void => {
      channels.rateLimit.publish({ prefix, route: url, method, policy: policyLabel(policies), outcome, source, cost })
    }
    return {
      id,
      settles: route.count !== 'all',
      check: async (request) => {
        if (options.allowList(request)) return { action: 'pass' }
        const user = options.user(request)
        const isUser = user !== undefined && user !== null
        const spend = isUser ? route.user : route.anon
        if (spend === null) return { action: 'pass' }
        const policies = spend.policies(request)
        if (policies === null) return { action: 'pass' }
        const keyOf = (isUser ? userKey : anonKey) as (...rest: KeyPart[]) => string
        const custom = route.key?.(request)
        // A custom key may be a secret (an API key): only its digest goes into Redis.
        const key = custom !== undefined && custom !== null
          ? keyOf('k', hashed(String(custom)))
          : isUser ? keyOf('u', String(user)) : keyOf('ip', normalizeIp(request.ip, options.ipv6Subnet) ?? String(request.ip))
        const cost = route.cost(request)
        let result = blocks?.refused(key, cost)
        let local = false
        const observed = channels.rateLimit.hasSubscribers
        let source: RateLimitEvent['source'] = 'redis'
        if (result !== undefined) {
          stats.blockedLocally++
          source = 'block-cache'
        } else {
          try {
            result = await this.#limiter.consume(key, policies, cost)
          } catch (err) {
            this.#logFailure(err)
            if (this.#local === undefined) {
              const verdict = this.#failed()
              if (observed) publish(verdict.action === 'pass' ? 'failed-open' : 'failed-closed', 'redis', policies, cost)
              return verdict
            }
            source = 'local'
            stats.failedLocal++
            result = this.#local.consume(key, policies, cost)
            local = true
          }
          if (!result.allowed) blocks?.add(key, cost, result)
        }
        if (result.allowed) {
          stats.allowed++
          if (observed) publish('allowed', source, policies, cost)
          const headers = options.headers !== false ? rateLimitHeaders(result, options.headers) : undefined
          if (route.count === 'all') return { action: 'pass', headers }
          const counted = result
          return {
            action: 'pass',
            headers,
            settle: (statusCode) => {
              const success = route.successful(request, statusCode)
              if (success === (route.count === 'successes')) return
              this.#refund(key, policies, cost, counted.timeMs ?? Date.now(), local)
            }
          }
        }
        const violated = violatedPolicies(result, cost)
        if (route.dryRun) {
          stats.dryRunRefused++
          if (observed) publish('dry-run', source, policies, cost)
          this.#log.info({ rateLimit: { route: id, counter: spend.counter, policies: violated, retryAfterMs: result.retryAfterMs } }, 'rate limiter (dry run): would refuse this request')
          const headers = options.headers !== false ? rateLimitHeaders({ ...result, allowed: true }, options.headers) : undefined
          return { action: 'pass', headers }
        }
        stats.limited++
        if (observed) publish('limited', source, policies, cost)
        const retry = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
        const error = new RateLimitedError(retry)
        return {
          action: 'refuse',
          status: 429,
          headers: { ...rateLimitHeaders(result, options.headers), ...PROBLEM_TYPE },
          body: { type: QUOTA_EXCEEDED, title: 'Too Many Requests', status: 429, code: error.code, detail: error.message, 'violated-policies': violated, retryAfter: retry },
          result
        }
      }
    }
  }

  #keyBuilder (spend: Spend<Req>): (...rest: KeyPart[]) => string {
    const id = spend.tag.join('\u0000')
    let build = this.#keyBuilders.get(id)
    if (build === undefined) {
      build = this.#keyspace.taggedKeyWith(...spend.tag)
      this.#keyBuilders.set(id, build)
    }
    return build
  }

  #failed (): Verdict {
    if (this.options.onRedisError === 'open') { this.stats.failedOpen++; return { action: 'pass' } }
    this.stats.failedClosed++
    const error = new RateLimitUnavailableError()
    return { action: 'refuse', status: 503, headers: PROBLEM_TYPE, body: { type: 'about:blank', title: 'Service Unavailable', status: 503, code: error.code, detail: error.message } }
  }

  #refund (key: string, policies: readonly Policy[], cost: number, timeMs: number, local: boolean): void {
    if (local) { this.#local?.refund(key, policies, cost, timeMs); this.stats.refunded++; return }
    // counted once Redis has it, so that `refunded` in redisHealth() says what is given back
    this.#limiter.refund(key, policies, cost, timeMs).then(() => { this.stats.refunded++ }, (err: unknown) => this.#logFailure(err))
  }
}

// The names of a budget's policies, joined once per list (a route's static rates are one list).
const policyLabels = new WeakMap<readonly Policy[], string>()
function policyLabel (policies: readonly Policy[]): string {
  let label = policyLabels.get(policies)
  if (label === undefined) {
    label = policies.map((p) => p.name).join(',')
    policyLabels.set(policies, label)
  }
  return label
}

// The policies that refused a request of `cost`; during a ban, every one.
function violatedPolicies (result: LimitResult, cost: number): string[] {
  const names: string[] = []
  for (const s of result.policies) if (s.remaining < cost) names.push(s.policy.name)
  return names.length > 0 || !result.banned ? names : result.policies.map((s) => s.policy.name)
}

// A Redis outage fails every request; one warning per 10 s says so without flooding the log.
function failureLog (log: WarnLogger, mode: 'open' | 'closed' | 'local'): (err: unknown) => void {
  const warn = throttledWarn(log)
  const msg = {
    open: 'rate limiter: Redis failed; letting requests through unlimited',
    closed: 'rate limiter: Redis failed; refusing requests with 503',
    local: 'rate limiter: Redis failed; counting in this process until it is back'
  }[mode]
  return (err) => warn({ err }, msg)
}
