// The rate limiter of HTTP routes, whatever the framework: the options, each route's
// policies, which counter a request spends, and what to answer (pass with headers, 429, or
// 503 when Redis fails and the policy is to fail closed). A door (a Fastify hook, an Express
// middleware) asks `check()` and applies the verdict; it holds no rules of its own.
import { BlockList, isIP } from 'node:net'
import { checkKeys, hashed, InvalidOptionError, optionKeys, parsePositiveDuration, RateLimitedError, RateLimitUnavailableError, REGISTER_KEYS, throttledWarn } from '../core/index.js'
import type { Duration, Keyspace, WarnLogger } from '../core/index.js'
import { createRateLimitApi } from './api.js'
import type { RateLimitApi } from './api.js'
import { rateLimitHeaders } from './headers.js'
import type { HeaderMode } from './headers.js'
import { normalizeIp } from './ip.js'
import { isAlgorithm, resolvePolicies } from './limiter.js'
import type { Algorithm, Limiter, LimitResult, Policy, RateSpec } from './limiter.js'

/** What the guard needs of a request: its client address; the option functions get the whole request. */
export interface LimitedRequest { ip: string }

type ClientKeyFn<Req> = (request: Req) => string | number | null | undefined

/** Limits of one route (`config: { rateLimit: {...} }`); what is left out comes from the plugin options. */
export interface RouteRateLimit<Req = LimitedRequest> {
  /** For every client. @default the plugin's rate */
  rate?: RateSpec
  /** For requests without a user (by IP); without it and `rate`, they are not limited. @default rate */
  anonymousRate?: RateSpec
  /** For requests with a user; without it and `rate`, they are not limited. @default rate */
  userRate?: RateSpec
  /** @default the plugin's algorithm */
  algorithm?: Algorithm
  /** GCRA: requests allowed at once. @default the rate's count */
  burst?: number
  /** Who is counted; null or undefined falls back to the user, then the IP. @default the plugin's key */
  key?: ClientKeyFn<Req>
  /** Units one request uses. @default 1 */
  cost?: number | ((request: Req) => number)
}

export interface RateLimitOptions<Req = LimitedRequest, Reply = unknown> extends Omit<RouteRateLimit<Req>, 'cost'> {
  /** Named connection of the core plugin. @default the default connection */
  connection?: string
  /** Key namespace, to keep apps on one prefix apart. @default 'default' */
  namespace?: string
  /** Resolves the user of a request. @default request.session?.userId ?? request.user?.id */
  user?: (request: Req) => string | number | null | undefined
  /** IPs and CIDRs (`'10.0.0.0/8'`) never limited, or a function that says so. @default [] */
  allowList?: string[] | ((request: Req) => boolean)
  /** @default 'draft' */
  headers?: HeaderMode
  /** Answer 503 instead of letting requests through when Redis fails. @default false */
  failClosed?: boolean
  /** Refuse every request of a client for `duration` after `after` refusals within `duration`. @default undefined (no bans) */
  ban?: { after: number, duration: Duration }
  /** Called before a 429 is sent; it may send its own reply. @default undefined */
  onExceeded?: (request: Req, reply: Reply, result: LimitResult) => void | Promise<void>
  /** The route hook that checks limits; 'preHandler' when users are resolved by later hooks. @default 'onRequest' */
  hook?: 'onRequest' | 'preHandler'
}

/** A problem details body (RFC 9457), as the 429 and 503 send it. */
export interface ProblemBody { type: string, title: string, status: number, code: string, detail: string, retryAfter?: number }

/** What to do with a request: let it through (with headers to send), or answer for it. */
export type Verdict =
  | { action: 'pass', headers?: Record<string, string> }
  | { action: 'refuse', status: 429, headers: Record<string, string>, body: ProblemBody, result: LimitResult }
  | { action: 'refuse', status: 503, headers: Record<string, string>, body: ProblemBody }

/** The checks of one route. */
export interface RouteGuard<Req> {
  /** `METHODS /url` (GET and HEAD share one counter). */
  id: string
  check: (request: Req) => Promise<Verdict>
}

interface CompiledRoute<Req> { id: string, anon: Policy[] | null, user: Policy[] | null, key: ClientKeyFn<Req> | undefined, cost: (request: Req) => number }

const defaultUser = (request: unknown): unknown => {
  const r = request as { session?: { userId?: unknown }, user?: { id?: unknown } }
  return r.session?.userId ?? r.user?.id
}

const ROUTE_KEYS = optionKeys<RouteRateLimit>({ rate: true, anonymousRate: true, userRate: true, algorithm: true, burst: true, key: true, cost: true })
const KEYS = [...REGISTER_KEYS, ...ROUTE_KEYS.filter((k) => k !== 'cost'), ...optionKeys<Omit<RateLimitOptions, keyof RouteRateLimit>>({
  connection: true, namespace: true, user: true, allowList: true, headers: true, failClosed: true, ban: true, onExceeded: true, hook: true
})]
const BAN_KEYS = optionKeys<NonNullable<RateLimitOptions['ban']>>({ after: true, duration: true })

/** The plugin options, checked (an unknown key, a bad rate or type stops startup) and with their defaults. */
export function resolveRateLimitOptions<Req extends LimitedRequest, Reply> (opts: RateLimitOptions<Req, Reply> | undefined) {
  const o = opts ?? {}
  checkKeys(o, KEYS, 'rateLimit')
  const algorithm = o.algorithm ?? 'gcra'
  if (!isAlgorithm(algorithm)) throw new InvalidOptionError('algorithm', 'expected "gcra", "fixed-window" or "sliding-window"')
  for (const name of ['key', 'user', 'onExceeded'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'function') throw new InvalidOptionError(name, 'expected a function')
  }
  const headers = o.headers ?? 'draft'
  if (!['draft', 'legacy', 'both', false].includes(headers)) throw new InvalidOptionError('headers', 'expected "draft", "legacy", "both" or false')
  const hook = o.hook ?? 'onRequest'
  if (hook !== 'onRequest' && hook !== 'preHandler') throw new InvalidOptionError('hook', 'expected "onRequest" or "preHandler"')
  if (typeof (o.failClosed ?? false) !== 'boolean') throw new InvalidOptionError('failClosed', 'expected a boolean')
  let ban: { after: number, durationMs: number } | undefined
  if (o.ban !== undefined) {
    checkKeys(o.ban, BAN_KEYS, 'rateLimit.ban')
    if (!Number.isSafeInteger(o.ban?.after) || o.ban.after < 1) throw new InvalidOptionError('ban.after', 'expected a positive integer')
    ban = { after: o.ban.after, durationMs: parsePositiveDuration(o.ban.duration, 'ban.duration') }
  }
  let allowList: (request: Req) => boolean = () => false
  if (typeof o.allowList === 'function') allowList = o.allowList
  else if (o.allowList !== undefined) allowList = ipAllowList(o.allowList)
  // Validate the plugin's rates now, so that a typo fails at startup even before a route uses it.
  const base = { rate: o.rate, anonymousRate: o.anonymousRate, userRate: o.userRate, algorithm, burst: o.burst, key: o.key }
  const global = o.rate !== undefined || o.anonymousRate !== undefined || o.userRate !== undefined
  if (global) compileRoute<Req>({}, '', base, '')
  return Object.freeze({ ...base, connection: o.connection, namespace: o.namespace, user: o.user ?? defaultUser, allowList, headers, hook, failClosed: o.failClosed ?? false, ban, onExceeded: o.onExceeded, global })
}

export type ResolvedRateLimitOptions<Req extends LimitedRequest, Reply> = ReturnType<typeof resolveRateLimitOptions<Req, Reply>>

function ipAllowList (entries: unknown): (request: LimitedRequest) => boolean {
  if (!Array.isArray(entries)) throw new InvalidOptionError('allowList', 'expected an array of IPs and CIDRs, or a function')
  const list = new BlockList()
  for (const entry of entries) {
    const [addr = '', bits] = String(entry).split('/')
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
    if (isIP(addr) === 0 || (bits !== undefined && !/^\d+$/.test(bits))) throw new InvalidOptionError('allowList', `"${entry}" is not an IP or CIDR`)
    if (bits === undefined) list.addAddress(addr, type)
    else list.addSubnet(addr, Number(bits), type)
  }
  return (request) => {
    const ip = normalizeIp(request.ip)
    if (ip === undefined) return false
    if (!ip.includes(':')) return list.check(ip, 'ipv4') // IPv4-mapped addresses included
    const zone = request.ip.indexOf('%')
    return list.check(zone === -1 ? request.ip : request.ip.slice(0, zone), 'ipv6')
  }
}

type Base<Req> = Partial<Pick<RouteRateLimit<Req>, 'rate' | 'anonymousRate' | 'userRate' | 'algorithm' | 'burst' | 'key'>>

function compileRoute<Req> (route: RouteRateLimit<Req>, id: string, base: Base<Req>, at: string): CompiledRoute<Req> {
  const name = (option: string) => at === '' ? option : `${at}.${option}`
  if (route === null || typeof route !== 'object') throw new InvalidOptionError(at, 'expected an object or false')
  if (at !== '') checkKeys(route, ROUTE_KEYS, at)
  const algorithm = route.algorithm ?? base.algorithm ?? 'gcra'
  const ownRate = route.rate !== undefined || route.anonymousRate !== undefined || route.userRate !== undefined
  const burst = route.burst ?? (ownRate ? undefined : base.burst)
  // The most specific rate wins: the route's scope rate, the route's rate, the plugin's scope rate, the plugin's rate.
  const pick = (scope: 'anonymousRate' | 'userRate', policyName: string): Policy[] | null => {
    const [spec, option] = route[scope] !== undefined
      ? [route[scope], scope]
      : route.rate !== undefined ? [route.rate, 'rate'] : base[scope] !== undefined ? [base[scope], scope] : [base.rate, 'rate']
    return spec === undefined ? null : resolvePolicies(spec, { name: policyName, algorithm, burst }, name(option))
  }
  const anon = pick('anonymousRate', 'anon')
  const user = pick('userRate', 'user')
  if (anon === null && user === null) throw new InvalidOptionError(name('rate'), 'no rate is set for this route nor in the plugin options')
  const cost = route.cost ?? 1
  if (typeof cost !== 'function' && (!Number.isSafeInteger(cost) || cost < 1)) throw new InvalidOptionError(name('cost'), 'expected a positive integer or a function')
  if (route.key !== undefined && typeof route.key !== 'function') throw new InvalidOptionError(name('key'), 'expected a function')
  return { id, anon, user, key: route.key ?? base.key, cost: typeof cost === 'function' ? cost : () => cost }
}

function problem (status: number, title: string, code: string, detail: string): ProblemBody {
  return { type: 'about:blank', title, status, code, detail }
}

const PROBLEM_TYPE = { 'content-type': 'application/problem+json' }

export interface RateLimitGuardOptions<Req extends LimitedRequest, Reply> {
  limiter: Limiter
  keyspace: Keyspace
  options: ResolvedRateLimitOptions<Req, Reply>
  log: WarnLogger
}

/** The limiter of one app's routes: counts, stats and the programmatic API share it. */
export class RateLimitGuard<Req extends LimitedRequest, Reply = unknown> {
  readonly options: ResolvedRateLimitOptions<Req, Reply>
  readonly stats = { allowed: 0, limited: 0, failedOpen: 0, failedClosed: 0 }
  readonly api: RateLimitApi
  readonly #limiter: Limiter
  readonly #keyspace: Keyspace
  readonly #logFailure: (err: unknown) => void

  constructor (o: RateLimitGuardOptions<Req, Reply>) {
    this.options = o.options
    this.#limiter = o.limiter
    this.#keyspace = o.keyspace
    this.#logFailure = failureLog(o.log, o.options.failClosed)
    this.api = createRateLimitApi(o.limiter, (key) => o.keyspace.taggedKey(['k', key]), o.options.failClosed, this.#logFailure)
  }

  /**
   * The checks of a route, or null when no limit applies to it (`false`, or no config and no
   * plugin-wide rate). Throws FRS_INVALID_OPTION for a bad config, named by `at`.
   */
  forRoute (config: RouteRateLimit<Req> | false | undefined, methods: string | readonly string[], url: string, at: string): RouteGuard<Req> | null {
    if (config === false || (config === undefined && !this.options.global)) return null
    // HEAD is GET without a body (Fastify adds a HEAD route for each GET): one counter for both.
    const id = `${[...new Set([methods].flat().map((m) => (m === 'HEAD' ? 'GET' : m)))].join(',')} ${url}`
    const compiled = compileRoute(config ?? {}, id, this.options, at)
    const keyOf = this.#keyspace.taggedKeyWith('r', compiled.id)
    const options = this.options
    const stats = this.stats
    return {
      id,
      check: async (request) => {
        if (options.allowList(request)) return { action: 'pass' }
        const user = options.user(request)
        const custom = compiled.key?.(request)
        // A custom key may be a secret (an API key): only its digest goes into Redis.
        const key = custom !== undefined && custom !== null
          ? keyOf('k', hashed(String(custom)))
          : user !== undefined && user !== null ? keyOf('u', String(user)) : keyOf('ip', normalizeIp(request.ip) ?? String(request.ip))
        const policies = user === undefined || user === null ? compiled.anon : compiled.user
        if (policies === null) return { action: 'pass' }
        let result: LimitResult
        try {
          result = await this.#limiter.consume(key, policies, compiled.cost(request))
        } catch (err) {
          this.#logFailure(err)
          if (!options.failClosed) { stats.failedOpen++; return { action: 'pass' } }
          stats.failedClosed++
          const error = new RateLimitUnavailableError({ cause: err })
          return { action: 'refuse', status: 503, headers: PROBLEM_TYPE, body: problem(503, 'Service Unavailable', error.code, error.message) }
        }
        const headers = options.headers !== false || !result.allowed ? rateLimitHeaders(result, options.headers) : undefined
        if (result.allowed) { stats.allowed++; return { action: 'pass', headers } }
        stats.limited++
        const retry = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
        const error = new RateLimitedError(retry)
        return { action: 'refuse', status: 429, headers: { ...headers, ...PROBLEM_TYPE }, body: { ...problem(429, 'Too Many Requests', error.code, error.message), retryAfter: retry }, result }
      }
    }
  }
}

// A Redis outage fails every request; one warning per 10 s says so without flooding the log.
function failureLog (log: WarnLogger, failClosed: boolean): (err: unknown) => void {
  const warn = throttledWarn(log)
  const msg = failClosed ? 'rate limiter: Redis failed; refusing requests with 503' : 'rate limiter: Redis failed; letting requests through unlimited'
  return (err) => warn({ err }, msg)
}
