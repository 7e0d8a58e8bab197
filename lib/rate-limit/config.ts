// The rate limiter's options and each route's counters: which budget (plugin-wide, a named
// scope, the route's own) a request spends, with which policies, checked at startup.
import { BlockList, isIP } from 'node:net'
import { checkKeys, InvalidOptionError, optionKeys, parsePositiveDuration, REGISTER_KEYS } from '../core/index.js'
import type { Duration } from '../core/index.js'
import type { HeaderMode } from './headers.js'
import { isIpv6Subnet, normalizeIp } from './ip.js'
import { isAlgorithm, resolvePolicies } from './limiter.js'
import type { Algorithm, LimitResult, Policy, RateSpec } from './limiter.js'

/** What the guard needs of a request: its client address; the option functions get the whole request. */
export interface LimitedRequest { ip: string }

type ClientKeyFn<Req> = (request: Req) => string | number | null | undefined

/**
 * A rate, or a function of the request that picks one (a plan: `(request) => request.user?.pro
 * ? '10000/hour' : '100/hour'`); null or undefined leaves the request unlimited. What a
 * function returns is validated when first seen and remembered (up to 1,000 strings).
 */
export type RateOption<Req = LimitedRequest> = RateSpec | ((request: Req) => RateSpec | null | undefined)

/** The rates of one budget: the plugin-wide one, a named scope, or a route's own. */
export interface ScopeRates<Req = LimitedRequest> {
  /** For every client. @default undefined */
  rate?: RateOption<Req>
  /** For requests without a user (by IP); without it and `rate`, they spend the next budget. @default rate */
  anonymousRate?: RateOption<Req>
  /** For requests with a user; without it and `rate`, they spend the next budget. @default rate */
  userRate?: RateOption<Req>
  /** @default the plugin's algorithm, else 'gcra' */
  algorithm?: Algorithm
  /** GCRA: requests allowed at once, for the rates next to it. @default the rate's count */
  burst?: number
}

/** Which requests a route counts: all, or only those whose outcome is a failure or a success. */
export type CountMode = 'all' | 'failures' | 'successes'

/** Limits of one route (`config: { rateLimit: {...} }`); what is left out comes from the plugin options. */
export interface RouteRateLimit<Req = LimitedRequest> extends ScopeRates<Req> {
  /** Spend the budget of the plugin's `scopes[name]`, shared by every route that names it. @default undefined */
  scope?: string
  /** Who is counted; null or undefined falls back to the user, then the IP. @default the plugin's key */
  key?: ClientKeyFn<Req>
  /** Units one request uses. @default 1 */
  cost?: number | ((request: Req) => number)
  /** `'failures'` or `'successes'`: the check reserves, and a request of the other outcome is given back after the response. @default the plugin's count, else 'all' */
  count?: CountMode
  /** What a success is, for `count`. @default (request, statusCode) => statusCode < 400 */
  successful?: (request: Req, statusCode: number) => boolean
  /** Compute, send headers and log refusals, but refuse nothing. @default the plugin's dryRun, else false */
  dryRun?: boolean
}

/** What the limiter does when Redis fails: let requests through, answer 503, or count in this process. */
export type RedisErrorMode = 'open' | 'closed' | 'local'

export interface RateLimitOptions<Req = LimitedRequest, Reply = unknown> extends Omit<RouteRateLimit<Req>, 'cost' | 'scope'> {
  /** Named connection of the core plugin. @default the default connection */
  connection?: string
  /** Key namespace, to keep apps on one prefix apart. @default 'default' */
  namespace?: string
  /** Named budgets that routes share with `scope: name`: a rate, or `{ rate?, anonymousRate?, userRate?, algorithm?, burst? }`. @default {} */
  scopes?: Record<string, RateOption<Req> | ScopeRates<Req>>
  /** Resolves the user of a request. @default request.session?.userId ?? request.user?.id */
  user?: (request: Req) => string | number | null | undefined
  /** IPs and CIDRs (`'10.0.0.0/8'`) never limited, or a function that says so. @default [] */
  allowList?: string[] | ((request: Req) => boolean)
  /** IPv6 clients are counted by their network of this many bits. @default 64 */
  ipv6Subnet?: number
  /** @default 'draft' */
  headers?: HeaderMode
  /** When Redis fails: `'open'` lets requests through, `'closed'` answers 503, `'local'` counts in this process. @default 'open' */
  onRedisError?: RedisErrorMode
  /** The same as `onRedisError: 'closed'` (true) or `'open'` (false). @default false */
  failClosed?: boolean
  /** Refuse known-refused clients from memory until their retry time, remembering at most this many; false: ask Redis every time. @default false */
  blockCache?: number | false
  /** Refuse every request of a client for `duration` after `after` refusals within `duration`. @default undefined (no bans) */
  ban?: { after: number, duration: Duration }
  /** Called before a 429 is sent; it may send its own reply. @default undefined */
  onExceeded?: (request: Req, reply: Reply, result: LimitResult) => void | Promise<void>
  /** The route hook that checks limits; 'preHandler' when users are resolved by later hooks. @default 'onRequest' */
  hook?: 'onRequest' | 'preHandler'
}

/** The policies a request spends, or null when its rate leaves it unlimited. */
export type PolicySource<Req> = (request: Req) => readonly Policy[] | null

/** One budget for one kind of client: its Redis keys' tag and its policies. */
export interface Spend<Req> { counter: 'plugin' | 'scope' | 'route', tag: string[], policies: PolicySource<Req> }

export interface CompiledRoute<Req> {
  id: string
  anon: Spend<Req> | null
  user: Spend<Req> | null
  key: ClientKeyFn<Req> | undefined
  cost: (request: Req) => number
  count: CountMode
  successful: (request: Req, statusCode: number) => boolean
  dryRun: boolean
}

const defaultUser = (request: unknown): unknown => {
  const r = request as { session?: { userId?: unknown }, user?: { id?: unknown } }
  return r.session?.userId ?? r.user?.id
}
const defaultSuccessful = (_request: unknown, statusCode: number): boolean => statusCode < 400

const RATE_KEYS = optionKeys<ScopeRates>({ rate: true, anonymousRate: true, userRate: true, algorithm: true, burst: true })
const ROUTE_KEYS = [...RATE_KEYS, ...optionKeys<Omit<RouteRateLimit, keyof ScopeRates>>({ scope: true, key: true, cost: true, count: true, successful: true, dryRun: true })]
const KEYS = [...REGISTER_KEYS, ...ROUTE_KEYS.filter((k) => k !== 'cost' && k !== 'scope'), ...optionKeys<Omit<RateLimitOptions, keyof RouteRateLimit>>({
  connection: true, namespace: true, scopes: true, user: true, allowList: true, ipv6Subnet: true, headers: true, onRedisError: true, failClosed: true, blockCache: true, ban: true, onExceeded: true, hook: true
})]
const BAN_KEYS = optionKeys<NonNullable<RateLimitOptions['ban']>>({ after: true, duration: true })
const SCOPE_NAME = /^[A-Za-z0-9_.-]{1,64}$/
const COUNT_MODES: readonly CountMode[] = ['all', 'failures', 'successes']
const RATE_CACHE_MAX = 1000

type Sets<Req> = ReturnType<typeof compileSets<Req>>

/** The plugin options, checked (an unknown key, a bad rate or type stops startup) and with their defaults. */
export function resolveRateLimitOptions<Req extends LimitedRequest, Reply> (opts: RateLimitOptions<Req, Reply> | undefined) {
  const o = opts ?? {}
  checkKeys(o, KEYS, 'rateLimit')
  const algorithm = o.algorithm ?? 'gcra'
  if (!isAlgorithm(algorithm)) throw new InvalidOptionError('algorithm', 'expected "gcra", "fixed-window" or "sliding-window"')
  for (const name of ['key', 'user', 'onExceeded', 'successful'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'function') throw new InvalidOptionError(name, 'expected a function')
  }
  const headers = o.headers ?? 'draft'
  if (!['draft', 'legacy', 'both', false].includes(headers)) throw new InvalidOptionError('headers', 'expected "draft", "legacy", "both" or false')
  const hook = o.hook ?? 'onRequest'
  if (hook !== 'onRequest' && hook !== 'preHandler') throw new InvalidOptionError('hook', 'expected "onRequest" or "preHandler"')
  const onRedisError = redisErrorMode(o.onRedisError, o.failClosed)
  const blockCache = o.blockCache ?? false
  if (blockCache !== false && (!Number.isSafeInteger(blockCache) || blockCache < 1)) throw new InvalidOptionError('blockCache', 'expected false or the most clients to remember (a positive integer)')
  const ipv6Subnet = o.ipv6Subnet ?? 64
  if (!isIpv6Subnet(ipv6Subnet)) throw new InvalidOptionError('ipv6Subnet', 'expected a prefix length from 1 to 128')
  const count = checkCount(o.count, 'count') ?? 'all'
  if (o.dryRun !== undefined && typeof o.dryRun !== 'boolean') throw new InvalidOptionError('dryRun', 'expected a boolean')
  let ban: { after: number, durationMs: number } | undefined
  if (o.ban !== undefined) {
    checkKeys(o.ban, BAN_KEYS, 'rateLimit.ban')
    if (!Number.isSafeInteger(o.ban?.after) || o.ban.after < 1) throw new InvalidOptionError('ban.after', 'expected a positive integer')
    ban = { after: o.ban.after, durationMs: parsePositiveDuration(o.ban.duration, 'ban.duration') }
  }
  let allowList: (request: Req) => boolean = () => false
  if (typeof o.allowList === 'function') allowList = o.allowList
  else if (o.allowList !== undefined) allowList = ipAllowList(o.allowList)
  // The plugin's budget and the scopes are compiled once: every route that spends one of them
  // shares its policy objects (and so their cached script arguments and headers).
  const plugin = compileSets<Req>(o, 'plugin', ['p'], { anon: 'anon', user: 'user' }, algorithm, '')
  if (o.scopes !== undefined && (o.scopes === null || typeof o.scopes !== 'object' || Array.isArray(o.scopes))) throw new InvalidOptionError('scopes', 'expected an object of named rates')
  const scopes = new Map<string, Sets<Req>>()
  for (const [name, value] of Object.entries(o.scopes ?? {})) {
    if (!SCOPE_NAME.test(name)) throw new InvalidOptionError(`scopes.${name}`, 'a scope name is 1 to 64 letters, digits, "_", "-" or "."')
    const rates: ScopeRates<Req> = typeof value === 'string' || typeof value === 'function' || Array.isArray(value) ? { rate: value } : value
    if (rates === null || typeof rates !== 'object') throw new InvalidOptionError(`scopes.${name}`, 'expected a rate or { rate, anonymousRate, userRate, algorithm, burst }')
    checkKeys(rates, RATE_KEYS, `rateLimit.scopes.${name}`)
    const sets = compileSets<Req>(rates, 'scope', ['s', name], { anon: name, user: name }, rates.algorithm ?? algorithm, `scopes.${name}`)
    if (sets.anon === null && sets.user === null) throw new InvalidOptionError(`scopes.${name}`, 'sets no rate')
    scopes.set(name, sets)
  }
  return Object.freeze({
    connection: o.connection,
    namespace: o.namespace,
    algorithm,
    key: o.key,
    plugin,
    scopes,
    global: plugin.anon !== null || plugin.user !== null,
    user: o.user ?? defaultUser,
    allowList,
    ipv6Subnet,
    headers,
    hook,
    onRedisError,
    blockCache,
    ban,
    count,
    successful: o.successful ?? defaultSuccessful,
    dryRun: o.dryRun ?? false,
    onExceeded: o.onExceeded
  })
}

export type ResolvedRateLimitOptions<Req extends LimitedRequest, Reply> = ReturnType<typeof resolveRateLimitOptions<Req, Reply>>

// failClosed is the older spelling of onRedisError 'closed' / 'open'; both given must agree.
function redisErrorMode (mode: unknown, failClosed: unknown): RedisErrorMode {
  if (failClosed !== undefined && typeof failClosed !== 'boolean') throw new InvalidOptionError('failClosed', 'expected a boolean')
  if (mode === undefined) return failClosed === true ? 'closed' : 'open'
  if (mode !== 'open' && mode !== 'closed' && mode !== 'local') throw new InvalidOptionError('onRedisError', 'expected "open", "closed" or "local"')
  if (failClosed !== undefined && failClosed !== (mode === 'closed')) {
    throw new InvalidOptionError('failClosed', `failClosed: ${String(failClosed)} contradicts onRedisError: "${mode}"; set only onRedisError`)
  }
  return mode
}

function checkCount (value: unknown, option: string): CountMode | undefined {
  if (value !== undefined && !COUNT_MODES.includes(value as CountMode)) throw new InvalidOptionError(option, 'expected "all", "failures" or "successes"')
  return value as CountMode | undefined
}

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

// The anonymous and user budgets of one rate set; the most specific rate of each kind wins.
function compileSets<Req> (rates: ScopeRates<Req>, counter: Spend<Req>['counter'], tag: string[], names: { anon: string, user: string }, algorithm: Algorithm, at: string) {
  const name = (option: string) => at === '' ? option : `${at}.${option}`
  const spend = (kind: 'anonymousRate' | 'userRate', policyName: string): Spend<Req> | null => {
    const [spec, option] = rates[kind] !== undefined ? [rates[kind], kind] : [rates.rate, 'rate']
    if (spec === undefined) return null
    return { counter, tag, policies: policySource(spec, { name: policyName, algorithm, burst: rates.burst }, name(option)) }
  }
  return { anon: spend('anonymousRate', names.anon), user: spend('userRate', names.user) }
}

// A fixed rate is validated now; a function's results when first seen, remembered in a bounded
// map (strings) or by identity (lists), so that a plan's policies are one object per plan.
function policySource<Req> (spec: RateOption<Req>, defaults: { name: string, algorithm: Algorithm, burst?: number }, option: string): PolicySource<Req> {
  if (typeof spec !== 'function') {
    const list = resolvePolicies(spec, defaults, option)
    return () => list
  }
  const byRate = new Map<string, Policy[]>()
  const byList = new WeakMap<object, Policy[]>()
  return (request) => {
    const rate = spec(request)
    if (rate === null || rate === undefined) return null
    let found = typeof rate === 'string' ? byRate.get(rate) : byList.get(rate)
    if (found === undefined) {
      found = resolvePolicies(rate, defaults, `${option}()`)
      if (typeof rate !== 'string') byList.set(rate, found)
      else if (byRate.size < RATE_CACHE_MAX) byRate.set(rate, found)
    }
    return found
  }
}

/** The budgets of one route, checked; `at` names the route's config in errors. */
export function compileRoute<Req extends LimitedRequest> (options: ResolvedRateLimitOptions<Req, unknown>, route: RouteRateLimit<Req>, id: string, at: string): CompiledRoute<Req> {
  const name = (option: string) => `${at}.${option}`
  if (route === null || typeof route !== 'object') throw new InvalidOptionError(at, 'expected an object or false')
  checkKeys(route, ROUTE_KEYS, at)
  const ownRate = route.rate !== undefined || route.anonymousRate !== undefined || route.userRate !== undefined
  let own: Sets<Req> = { anon: null, user: null }
  if (route.scope !== undefined) {
    const scope = options.scopes.get(route.scope)
    if (scope === undefined) throw new InvalidOptionError(name('scope'), `no scope "${String(route.scope)}" in the plugin's scopes option`)
    for (const option of RATE_KEYS) {
      if (route[option as keyof ScopeRates] !== undefined) throw new InvalidOptionError(name(option), `a scope's rates are set in the plugin's scopes option (scope "${route.scope}")`)
    }
    own = scope
  } else if (ownRate) {
    own = compileSets<Req>(route, 'route', ['r', id], { anon: 'route', user: 'route' }, route.algorithm ?? options.algorithm, at)
  } else {
    for (const option of ['algorithm', 'burst'] as const) {
      if (route[option] !== undefined) throw new InvalidOptionError(name(option), 'applies to the route\'s own rate only: the plugin\'s rates are one budget across routes')
    }
  }
  const anon = own.anon ?? options.plugin.anon
  const user = own.user ?? options.plugin.user
  if (anon === null && user === null) throw new InvalidOptionError(name('rate'), 'no rate is set for this route nor in the plugin options')
  const cost = route.cost ?? 1
  if (typeof cost !== 'function' && (!Number.isSafeInteger(cost) || cost < 1)) throw new InvalidOptionError(name('cost'), 'expected a positive integer or a function')
  for (const option of ['key', 'successful'] as const) {
    if (route[option] !== undefined && typeof route[option] !== 'function') throw new InvalidOptionError(name(option), 'expected a function')
  }
  if (route.dryRun !== undefined && typeof route.dryRun !== 'boolean') throw new InvalidOptionError(name('dryRun'), 'expected a boolean')
  return {
    id,
    anon,
    user,
    key: route.key ?? options.key,
    cost: typeof cost === 'function' ? cost : () => cost,
    count: checkCount(route.count, name('count')) ?? options.count,
    successful: route.successful ?? options.successful,
    dryRun: route.dryRun ?? options.dryRun
  }
}
