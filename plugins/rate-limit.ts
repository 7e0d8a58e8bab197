import { BlockList, isIP } from 'node:net'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { checkKeys, hashed, InvalidOptionError, isCluster, optionKeys, parsePositiveDuration, RateLimitedError, RateLimitUnavailableError, REGISTER_KEYS, routeOptionPath } from '../lib/core/index.js'
import type { Duration } from '../lib/core/index.js'
import { createRateLimitApi, isAlgorithm, Limiter, normalizeIp, rateLimitHeaders, resolvePolicies } from '../lib/rate-limit/index.js'
import type { Algorithm, HeaderMode, LimitResult, Policy, RateLimitApi, RateSpec } from '../lib/rate-limit/index.js'

type ClientKeyFn = (request: FastifyRequest) => string | number | null | undefined

/** Limits of one route (`config: { rateLimit: {...} }`); what is left out comes from the plugin options. */
export interface RouteRateLimit {
  /** For every client. */
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
  key?: ClientKeyFn
  /** Units one request uses. @default 1 */
  cost?: number | ((request: FastifyRequest) => number)
}

export interface RateLimitOptions extends Omit<RouteRateLimit, 'cost'> {
  /** Named connection of the core plugin. @default the default connection */
  connection?: string
  /** Key namespace, to keep apps on one prefix apart. @default 'default' */
  namespace?: string
  /** Resolves the user of a request. @default request.session?.userId ?? request.user?.id */
  user?: (request: FastifyRequest) => string | number | null | undefined
  /** IPs and CIDRs (`'10.0.0.0/8'`) never limited, or a function that says so. @default [] */
  allowList?: string[] | ((request: FastifyRequest) => boolean)
  /** @default 'draft' */
  headers?: HeaderMode
  /** Answer 503 instead of letting requests through when Redis fails. @default false */
  failClosed?: boolean
  /** Refuse every request of a client for `duration` after `after` refusals within `duration`. @default undefined (no bans) */
  ban?: { after: number, duration: Duration }
  /** Called before a 429 is sent; it may send its own reply. @default undefined */
  onExceeded?: (request: FastifyRequest, reply: FastifyReply, result: LimitResult) => void | Promise<void>
  /** The route hook that checks limits; 'preHandler' when users are resolved by later hooks. @default 'onRequest' */
  hook?: 'onRequest' | 'preHandler'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Programmatic rate limits on the plugin's Redis connection. */
    rateLimit: RateLimitApi
  }
  interface FastifyContextConfig {
    /** This route's limits, or `false` to exempt it from the plugin's default. */
    rateLimit?: RouteRateLimit | false
  }
}

interface CompiledRoute { id: string, anon: Policy[] | null, user: Policy[] | null, key: ClientKeyFn | undefined, cost: (request: FastifyRequest) => number }

const defaultUser = (request: FastifyRequest): unknown => {
  const r = request as unknown as { session?: { userId?: unknown }, user?: { id?: unknown } }
  return r.session?.userId ?? r.user?.id
}

const ROUTE_KEYS = optionKeys<RouteRateLimit>({ rate: true, anonymousRate: true, userRate: true, algorithm: true, burst: true, key: true, cost: true })
const KEYS = [...REGISTER_KEYS, ...ROUTE_KEYS.filter((k) => k !== 'cost'), ...optionKeys<Omit<RateLimitOptions, keyof RouteRateLimit>>({
  connection: true, namespace: true, user: true, allowList: true, headers: true, failClosed: true, ban: true, onExceeded: true, hook: true
})]
const BAN_KEYS = optionKeys<NonNullable<RateLimitOptions['ban']>>({ after: true, duration: true })

function resolveOptions (opts: RateLimitOptions) {
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
  let allowList: (request: FastifyRequest) => boolean = () => false
  if (typeof o.allowList === 'function') allowList = o.allowList
  else if (o.allowList !== undefined) allowList = ipAllowList(o.allowList)
  // Validate the plugin's rates now, so that a typo fails at startup even before a route uses it.
  const base = { rate: o.rate, anonymousRate: o.anonymousRate, userRate: o.userRate, algorithm, burst: o.burst, key: o.key }
  if (o.rate !== undefined || o.anonymousRate !== undefined || o.userRate !== undefined) compileRoute({}, '', base, '')
  return Object.freeze({ ...base, connection: o.connection, namespace: o.namespace, user: o.user ?? defaultUser, allowList, headers, hook, failClosed: o.failClosed ?? false, ban, onExceeded: o.onExceeded, global: o.rate !== undefined || o.anonymousRate !== undefined || o.userRate !== undefined })
}

function ipAllowList (entries: unknown): (request: FastifyRequest) => boolean {
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

type Resolved = ReturnType<typeof resolveOptions>

function compileRoute (route: RouteRateLimit, id: string, base: Partial<Resolved>, at: string): CompiledRoute {
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

const rateLimitPlugin: FastifyPluginAsync<RateLimitOptions> = async (fastify, opts) => {
  const options = resolveOptions(opts)
  const client = fastify.redisConnection(options.connection)
  // ioredis bounds a standalone client's commands by its commandTimeout; a Cluster's not while
  // a node's connection is being set up, and an adopted client may have no timeout at all.
  const bounded = isCluster(client) || typeof client.options.commandTimeout !== 'number'
  const limiter = new Limiter({ client, ban: options.ban, timeoutMs: bounded ? fastify.redisSuite.commandTimeout : undefined })
  const keyspace = fastify.redisSuite.keyspace('rl', options.namespace)
  const stats = { allowed: 0, limited: 0, failedOpen: 0, failedClosed: 0 }
  fastify.redisSuite.addHealthSection('rateLimit', () => ({ ...stats }))
  const logFailure = throttledWarn(fastify, options.failClosed)

  fastify.decorate<RateLimitApi>('rateLimit', createRateLimitApi(limiter, (key) => keyspace.taggedKey(['k', key]), options.failClosed, logFailure))

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config?.rateLimit
    if (config === false || (config === undefined && !options.global)) return
    // HEAD is GET without a body (Fastify adds a HEAD route for each GET): one counter for both.
    const methods = [...new Set([route.method].flat().map((m) => (m === 'HEAD' ? 'GET' : m)))].join(',')
    const id = `${methods} ${route.url}`
    const compiled = compileRoute(config ?? {}, id, options, routeOptionPath(route.method, route.url, 'config.rateLimit'))
    const keyOf = keyspace.taggedKeyWith('r', compiled.id)
    const check = async (request: FastifyRequest, reply: FastifyReply) => {
      if (options.allowList(request)) return
      const user = options.user(request)
      const custom = compiled.key?.(request)
      // A custom key may be a secret (an API key): only its digest goes into Redis.
      const key = custom !== undefined && custom !== null
        ? keyOf('k', hashed(String(custom)))
        : user !== undefined && user !== null ? keyOf('u', String(user)) : keyOf('ip', normalizeIp(request.ip) ?? String(request.ip))
      const policies = user === undefined || user === null ? compiled.anon : compiled.user
      if (policies === null) return
      let result: LimitResult
      try {
        result = await limiter.consume(key, policies, compiled.cost(request))
      } catch (err) {
        logFailure(err)
        if (!options.failClosed) { stats.failedOpen++; return }
        stats.failedClosed++
        const error = new RateLimitUnavailableError({ cause: err })
        return reply.code(503).type('application/problem+json').send(problem(error.statusCode as number, 'Service Unavailable', error.code, error.message))
      }
      if (options.headers !== false || !result.allowed) reply.headers(rateLimitHeaders(result, options.headers))
      if (result.allowed) { stats.allowed++; return }
      stats.limited++
      if (options.onExceeded !== undefined) await options.onExceeded(request, reply, result)
      if (reply.sent) return reply
      const retry = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
      const error = new RateLimitedError(retry)
      return reply.code(429).type('application/problem+json').send({ ...problem(429, 'Too Many Requests', error.code, error.message), retryAfter: retry })
    }
    const existing = route[options.hook]
    route[options.hook] = existing === undefined ? [check] : [check, ...(Array.isArray(existing) ? existing : [existing])] as typeof existing
  })
}

function problem (status: number, title: string, code: string, detail: string) {
  return { type: 'about:blank', title, status, code, detail }
}

// A Redis outage fails every request; one warning per 10 s says so without flooding the log.
function throttledWarn (fastify: FastifyInstance, failClosed: boolean): (err: unknown) => void {
  let last = 0
  return (err) => {
    const now = Date.now()
    if (now - last < 10_000) return
    last = now
    fastify.log.warn({ err }, failClosed ? 'rate limiter: Redis failed; refusing requests with 503' : 'rate limiter: Redis failed; letting requests through unlimited')
  }
}

export type { RateLimitApi }

export default fp(rateLimitPlugin, {
  name: 'fastify-redis-suite/rate-limit',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
