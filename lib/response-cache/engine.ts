// The response cache of HTTP routes, whatever the framework: for each request, whether to
// serve a stored response, bypass, or run the handler and store what it answers; misses of one
// key coalesced in the process and, with `lock`, across instances; stale-while-revalidate with
// one refresh across instances. A door (a Fastify hook, an Express middleware) calls `begin()`
// before its handler and `capture()` with the handler's response, and applies the answers.
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { throttledWarn } from '../core/index.js'
import type { WarnLogger } from '../core/index.js'
import { encodingClass, entryKey, ifNoneMatchMatches, keptHeaders, normalizeQuery, pathOf, strongEtag, uncacheableReason } from './http.js'
import type { ResponseEntry } from './http.js'
import type { CacheRequest, ResolvedRouteCache, RouteInvalidation } from './options.js'
import type { ResponseStore } from './store.js'

/** A request as the engine reads it. */
export interface EngineRequest extends CacheRequest {
  method: string
}

interface Fill { promise: Promise<ResponseEntry | null>, done: (entry: ResponseEntry | null) => void, release: () => Promise<void> }

/** One request's place in the cache, from `begin()` to `settle()`; the door keeps it with the request. */
export interface Ticket { route: ResolvedRouteCache, key: string, path: string, shared: boolean, readAt?: string, fill?: Fill }

/** Headers to set on the response. */
export type HeaderSet = Record<string, string>

/** What to do before the handler runs. */
export type Begin =
  /** Run the handler; with a ticket, hand its response to `capture()` and call `settle()` when the response is done. */
  | { action: 'run', headers?: HeaderSet, ticket?: Ticket }
  /** Answer from the cache: this status, headers and body (none for a 304). */
  | { action: 'serve', status: number, headers: HeaderSet, body?: Buffer }

/** The handler's response as the door has it when it is about to be sent. */
export interface HandlerResponse {
  status: number
  headers: Record<string, unknown>
  payload: unknown
}

/** The request header that marks the refresh requests this process replays for stale-while-revalidate. */
export const REFRESH_HEADER = 'x-frs-cache-refresh'

export interface ResponseCacheEngineOptions {
  store: ResponseStore
  /** Sends a GET through the app (for a stale-while-revalidate refresh) with these headers. */
  replay: (url: string, headers: Record<string, string>) => Promise<unknown>
  /** Where Redis failures are logged: at most one line per 10 s, with the count of those left out. */
  log: WarnLogger
}

export class ResponseCacheEngine {
  readonly #store: ResponseStore
  readonly #replay: ResponseCacheEngineOptions['replay']
  readonly #warn: (obj: object, msg: string) => void
  // One handler run per key in this process; the others wait for its entry.
  readonly #inflight = new Map<string, Promise<ResponseEntry | null>>()
  readonly #refreshing = new Set<string>()
  // Marks the refresh requests this process replays; clients cannot guess it.
  readonly #refreshSecret = randomBytes(24).toString('base64url')

  constructor (o: ResponseCacheEngineOptions) {
    this.#store = o.store
    this.#replay = o.replay
    this.#warn = throttledWarn(o.log)
  }

  invalidateUrl (path: string): Promise<void> { return this.#store.invalidateUrl(pathOf(path)) }
  invalidateTags (tags: string[]): Promise<void> { return this.#store.invalidateTags(tags) }

  /**
   * What a mutating route does after it answered: a 2xx invalidates the route's tags (a
   * failure is logged; the response is already decided).
   */
  async afterMutation<Req, Reply> (inv: RouteInvalidation, request: Req, reply: Reply, status: number): Promise<void> {
    if (status < 200 || status >= 300) return
    const tags = typeof inv.tags === 'function' ? await inv.tags(request, reply) : inv.tags
    if (tags.length > 0) await this.#store.invalidateTags(tags).catch((err: unknown) => this.#warn({ err }, 'response cache: invalidation failed'))
  }

  async begin (request: EngineRequest, route: ResolvedRouteCache): Promise<Begin> {
    const identity = route.identify(request)
    if (identity === undefined) return { action: 'run', headers: { 'x-cache': 'BYPASS' } } // credentials on a route that does not key by user
    const path = pathOf(request.url)
    const key = entryKey({
      path: route.keyOf === undefined ? path : route.keyOf(request),
      query: route.keyOf === undefined ? normalizeQuery(request.url) : '',
      vary: route.vary.map((h) => h === 'accept-encoding' ? encodingClass(headerValue(request.headers[h])) : headerValue(request.headers[h])),
      user: identity ?? undefined
    })
    const ticket: Ticket = { route, key, path, shared: identity === null }
    if (request.headers[REFRESH_HEADER] === this.#refreshSecret) {
      this.#startFill(ticket)
      return { action: 'run', ticket }
    }
    const found = await this.#store.get(key).catch((err: unknown) => { this.#warn({ err }, 'response cache unavailable; serving without it') })
    if (found === undefined) return { action: 'run', headers: { 'x-cache': 'BYPASS' } }
    ticket.readAt = found.readAt
    if (found.entry !== undefined) {
      if (found.state === 'stale') this.#refresh(request, ticket)
      return this.#serve(request, found.entry, found.state === 'stale' ? 'STALE' : 'HIT', ticket)
    }
    const waiting = this.#inflight.get(key)
    if (waiting !== undefined) {
      const entry = await waiting
      if (entry !== null) return this.#serve(request, entry, 'HIT', ticket)
    }
    const fill = this.#startFill(ticket)
    if (!route.lock || request.method === 'HEAD') return { action: 'run', ticket }
    // Across instances: take the fill lock, or wait for the instance that holds it.
    const got = await this.#store.lockOrWait(key, route.lockTtl, route.lockWait).catch(() => null)
    if (typeof got === 'function') fill.release = got
    if (got !== 'filled') return { action: 'run', ticket }
    const after = await this.#store.get(key).catch(() => undefined)
    if (after?.entry === undefined) return { action: 'run', ticket }
    this.settle(ticket, after.entry)
    return this.#serve(request, after.entry, 'HIT', ticket)
  }

  /**
   * Stores the handler's response when it may be stored; resolves the payload to send (a
   * buffered stream becomes its bytes) and the headers to add (X-Cache, Age, ETag, Cache-Control).
   */
  async capture (ticket: Ticket, request: EngineRequest, response: HandlerResponse): Promise<{ payload: unknown, headers: HeaderSet }> {
    if (ticket.fill === undefined) return { payload: response.payload, headers: {} }
    const { payload } = response
    let reason = request.method === 'HEAD' ? 'HEAD' : uncacheableReason(response.status, ticket.route.statuses, response.headers, ticket.shared ? [] : ticket.route.sessionCookies)
    let body: Buffer | undefined
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) body = Buffer.from(payload)
    else if (payload instanceof Readable && ticket.route.bufferStreams && reason === undefined) body = await collect(payload)
    else reason ??= 'a stream'
    if (reason !== undefined || body === undefined) {
      this.settle(ticket, null)
      return { payload: body ?? payload, headers: { 'x-cache': 'BYPASS' } }
    }
    const entry: ResponseEntry = { status: response.status, headers: keptHeaders(response.headers, ticket.route.keepHeaders), body, etag: strongEtag(body), storedAt: Date.now() }
    try {
      const tags = await ticket.route.tags(request)
      await this.#store.set(ticket.key, ticket.path, entry, { ttl: ticket.route.ttl, grace: ticket.route.grace, tags, since: ticket.readAt })
    } catch (err) {
      this.#warn({ err }, 'response cache: store failed')
    }
    this.settle(ticket, entry)
    return { payload: body, headers: entryHeaders(entry, 'MISS', ticket) }
  }

  /** Ends a ticket's fill: requests waiting on it get `entry` (null: they run their own handler) and the fill lock is released. Safe to call twice. */
  settle (ticket: Ticket | undefined, entry: ResponseEntry | null): void {
    const fill = ticket?.fill
    if (ticket === undefined || fill === undefined) return
    ticket.fill = undefined
    if (this.#inflight.get(ticket.key) === fill.promise) this.#inflight.delete(ticket.key)
    fill.done(entry)
    fill.release().catch((err: unknown) => this.#warn({ err }, 'response cache: lock release failed'))
  }

  #startFill (ticket: Ticket): Fill {
    let done!: (entry: ResponseEntry | null) => void
    const promise = new Promise<ResponseEntry | null>((resolve) => { done = resolve })
    this.#inflight.set(ticket.key, promise)
    ticket.fill = { promise, done, release: async () => {} }
    return ticket.fill
  }

  #refresh (request: EngineRequest, ticket: Ticket): void {
    if (this.#refreshing.has(ticket.key)) return
    this.#refreshing.add(ticket.key)
    const headers: Record<string, string> = { [REFRESH_HEADER]: this.#refreshSecret }
    for (const name of [...ticket.route.vary, 'authorization', 'cookie']) {
      const value = headerValue(request.headers[name])
      if (value !== undefined) headers[name] = value
    }
    // One refresh across instances: a short lock; whoever does not get it leaves the refresh to the holder.
    this.#store.lockToRefresh(ticket.key, ticket.route.lockTtl)
      .then(async (release) => {
        if (release === null) return
        try { await this.#replay(request.url, headers) } finally { await release() }
      })
      .catch((err: unknown) => this.#warn({ err }, 'response cache: refresh failed'))
      .finally(() => this.#refreshing.delete(ticket.key))
  }

  #serve (request: EngineRequest, entry: ResponseEntry, status: 'HIT' | 'STALE', ticket: Ticket): Begin {
    const headers = entryHeaders(entry, status, ticket)
    if (ifNoneMatchMatches(headerValue(request.headers['if-none-match']), entry.etag)) return { action: 'serve', status: 304, headers }
    return { action: 'serve', status: entry.status, headers: { ...headers, ...entry.headers }, body: entry.body }
  }
}

function entryHeaders (entry: ResponseEntry, status: string, ticket: Ticket): HeaderSet {
  const ageMs = Math.max(0, Date.now() - entry.storedAt)
  return {
    'x-cache': status,
    age: String(Math.floor(ageMs / 1000)),
    etag: entry.etag,
    'cache-control': `${ticket.shared ? 'public' : 'private'}, max-age=${Math.max(0, Math.floor((ticket.route.ttl - ageMs) / 1000))}`
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
