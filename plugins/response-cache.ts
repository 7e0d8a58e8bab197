import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { InvalidOptionError, routeOptionPath } from '../lib/core/index.js'
import { checkRouteInvalidation, encodingClass, entryKey, ifNoneMatchMatches, keptHeaders, normalizeQuery, pathOf, resolveResponseCacheOptions, resolveRouteCache, ResponseStore, strongEtag, uncacheableReason } from '../lib/response-cache/index.js'
import type { ResolvedRouteCache, ResponseCacheOptions, ResponseEntry, RouteCacheConfig, RouteInvalidation } from '../lib/response-cache/index.js'

export type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from '../lib/response-cache/index.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this GET route's responses (`true` for the plugin's defaults), or `false`. */
    cache?: RouteCacheConfig | boolean
    /** Tags to invalidate after a 2xx response of this (mutating) route. */
    invalidates?: RouteInvalidation
  }
  interface FastifyInstance {
    responseCache: {
      /** Makes every cached variant (queries, vary values, users) of one path miss. */
      invalidateUrl: (path: string) => Promise<void>
      /** Makes every entry with one of the tags miss (same as `fastify.cache.invalidateTags`). */
      invalidateTags: (tags: string[]) => Promise<void>
    }
  }
}

interface Fill { promise: Promise<ResponseEntry | null>, done: (entry: ResponseEntry | null) => void, release: () => Promise<void> }
interface CacheState { route: ResolvedRouteCache, key: string, path: string, shared: boolean, readAt?: string, fill?: Fill }
const kState = Symbol('fastify-redis-suite.responseCache')
type WithState = FastifyRequest & { [kState]?: CacheState }

const REFRESH_HEADER = 'x-frs-cache-refresh'

const responseCache: FastifyPluginAsync<ResponseCacheOptions> = async (fastify, opts) => {
  const options = resolveResponseCacheOptions(opts)
  const store = new ResponseStore(fastify.cache.namespace('http'))
  // One handler run per key in this process; the others wait for its entry.
  const inflight = new Map<string, Promise<ResponseEntry | null>>()
  const refreshing = new Set<string>()
  // Marks the refresh requests this process injects for stale-while-revalidate; clients cannot guess it.
  const refreshSecret = randomBytes(24).toString('base64url')

  fastify.decorate('responseCache', {
    invalidateUrl: (path: string) => store.invalidateUrl(pathOf(path)),
    invalidateTags: (tags: string[]) => store.invalidateTags(tags)
  })

  fastify.addHook('onRoute', (route) => {
    const config = route.config as { cache?: RouteCacheConfig | boolean, invalidates?: RouteInvalidation } | undefined
    if (config?.invalidates !== undefined) addInvalidation(route, checkRouteInvalidation(config.invalidates, routeOptionPath(route.method, route.url, 'config.invalidates')))
    if (config?.cache === undefined || config.cache === false) return
    const name = routeOptionPath(route.method, route.url, 'config.cache')
    const methods = [route.method].flat()
    if (!methods.every((m) => m === 'GET' || m === 'HEAD')) throw new InvalidOptionError(name, 'only GET routes (and their HEAD) can be cached')
    const resolved = resolveRouteCache(config.cache, options, name)
    route.preHandler = [...[route.preHandler ?? []].flat(), async (request: FastifyRequest, reply: FastifyReply) => { await lookup(request as WithState, reply, resolved) }]
    route.onSend = [...[route.onSend ?? []].flat(), async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => capture(request as WithState, reply, payload)]
    route.onResponse = [...[route.onResponse ?? []].flat(), async (request: FastifyRequest) => { settle(request as WithState, null) }]
  })

  function addInvalidation (route: RouteOptions, inv: RouteInvalidation): void {
    const hook = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      if (reply.statusCode >= 200 && reply.statusCode < 300) {
        const tags = typeof inv.tags === 'function' ? await inv.tags(request, reply) : inv.tags
        if (tags.length > 0) await store.invalidateTags(tags).catch((err: unknown) => request.log.warn({ err }, 'response cache: invalidation failed'))
      }
      return payload
    }
    route.onSend = [...[route.onSend ?? []].flat(), hook]
  }

  async function lookup (request: WithState, reply: FastifyReply, route: ResolvedRouteCache): Promise<void> {
    const identity = route.identify(request)
    if (identity === undefined) { // credentials on a route that does not key by user
      reply.header('x-cache', 'BYPASS')
      return
    }
    const path = pathOf(request.url)
    const key = entryKey({
      path: route.keyOf === undefined ? path : route.keyOf(request),
      query: route.keyOf === undefined ? normalizeQuery(request.url) : '',
      vary: route.vary.map((h) => h === 'accept-encoding' ? encodingClass(headerValue(request.headers[h])) : headerValue(request.headers[h])),
      user: identity ?? undefined
    })
    const state: CacheState = { route, key, path, shared: identity === null }
    if (request.headers[REFRESH_HEADER] === refreshSecret) {
      request[kState] = state
      startFill(state, async () => {})
      return
    }
    const found = await store.get(key).catch((err: unknown) => { request.log.warn({ err }, 'response cache unavailable; serving without it') })
    if (found === undefined) {
      reply.header('x-cache', 'BYPASS')
      return
    }
    state.readAt = found.readAt
    if (found.entry !== undefined) {
      if (found.state === 'stale') refresh(request, state)
      return serve(request, reply, found.entry, found.state === 'stale' ? 'STALE' : 'HIT', state)
    }
    const waiting = inflight.get(key)
    if (waiting !== undefined) {
      const entry = await waiting
      if (entry !== null) return serve(request, reply, entry, 'HIT', state)
    }
    request[kState] = state
    const fill = startFill(state, async () => {})
    if (!route.lock || request.method === 'HEAD') return
    // Across instances: take the fill lock, or wait for the instance that holds it.
    const got = await store.lockOrWait(key, route.lockTtl, route.lockWait).catch(() => null)
    if (typeof got === 'function') fill.release = got
    if (got !== 'filled') return
    const after = await store.get(key).catch(() => undefined)
    if (after?.entry === undefined) return
    settle(request, after.entry)
    return serve(request, reply, after.entry, 'HIT', state)
  }

  function startFill (state: CacheState, release: () => Promise<void>): Fill {
    let done!: (entry: ResponseEntry | null) => void
    const promise = new Promise<ResponseEntry | null>((resolve) => { done = resolve })
    inflight.set(state.key, promise)
    state.fill = { promise, done, release }
    return state.fill
  }

  function settle (request: WithState, entry: ResponseEntry | null): void {
    const state = request[kState]
    const fill = state?.fill
    if (state === undefined || fill === undefined) return
    state.fill = undefined
    if (inflight.get(state.key) === fill.promise) inflight.delete(state.key)
    fill.done(entry)
    fill.release().catch((err: unknown) => request.log.warn({ err }, 'response cache: lock release failed'))
  }

  async function capture (request: WithState, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const state = request[kState]
    if (state?.fill === undefined) return payload
    const headers = reply.getHeaders() as Record<string, unknown>
    let reason = request.method === 'HEAD' ? 'HEAD' : uncacheableReason(reply.statusCode, state.route.statuses, headers, state.shared ? [] : state.route.sessionCookies)
    let body: Buffer | undefined
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) body = Buffer.from(payload)
    else if (payload instanceof Readable && state.route.bufferStreams && reason === undefined) body = await collect(payload)
    else reason ??= 'a stream'
    if (reason !== undefined || body === undefined) {
      reply.header('x-cache', 'BYPASS')
      settle(request, null)
      return body ?? payload
    }
    const entry: ResponseEntry = { status: reply.statusCode, headers: keptHeaders(headers, state.route.keepHeaders), body, etag: strongEtag(body), storedAt: Date.now() }
    try {
      const tags = await state.route.tags(request)
      await store.set(state.key, state.path, entry, { ttl: state.route.ttl, grace: state.route.grace, tags, since: state.readAt })
    } catch (err) {
      request.log.warn({ err }, 'response cache: store failed')
    }
    settle(request, entry)
    decorate(reply, entry, 'MISS', state)
    return body
  }

  function refresh (request: FastifyRequest, state: CacheState): void {
    if (refreshing.has(state.key)) return
    refreshing.add(state.key)
    const headers: Record<string, string> = { [REFRESH_HEADER]: refreshSecret }
    for (const name of [...state.route.vary, 'authorization', 'cookie']) {
      const value = headerValue(request.headers[name])
      if (value !== undefined) headers[name] = value
    }
    // One refresh across instances: a short lock; whoever does not get it leaves the refresh to the holder.
    store.lockToRefresh(state.key, state.route.lockTtl)
      .then(async (release) => {
        if (release === null) return
        try { await fastify.inject({ method: 'GET', url: request.url, headers }) } finally { await release() }
      })
      .catch((err: unknown) => fastify.log.warn({ err }, 'response cache: refresh failed'))
      .finally(() => refreshing.delete(state.key))
  }

  function serve (request: FastifyRequest, reply: FastifyReply, entry: ResponseEntry, status: 'HIT' | 'STALE', state: CacheState): FastifyReply {
    decorate(reply, entry, status, state)
    if (ifNoneMatchMatches(headerValue(request.headers['if-none-match']), entry.etag)) return reply.code(304).send()
    return reply.code(entry.status).headers(entry.headers).send(entry.body)
  }

  function decorate (reply: FastifyReply, entry: ResponseEntry, status: string, state: CacheState): void {
    const ageMs = Math.max(0, Date.now() - entry.storedAt)
    reply.header('x-cache', status)
    reply.header('age', String(Math.floor(ageMs / 1000)))
    reply.header('etag', entry.etag)
    reply.header('cache-control', `${state.shared ? 'public' : 'private'}, max-age=${Math.max(0, Math.floor((state.route.ttl - ageMs) / 1000))}`)
  }
}

function headerValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

async function collect (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string))
  return Buffer.concat(chunks)
}

export default fp(responseCache, {
  name: 'fastify-redis-suite/response-cache',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis', 'fastify-redis-suite/cache']
})
