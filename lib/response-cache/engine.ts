// The response cache of HTTP routes, whatever the framework: for each request, whether to
// serve a stored response, bypass, or run the handler and store what it answers; misses of one
// key coalesced in the process and, with `lock`, across instances; stale-while-revalidate with
// one refresh across instances; stale-if-error. A door (a Fastify hook, an Express middleware)
// calls `begin()` before its handler and `capture()` with the handler's response, and applies
// the answers.
//
// An invalidation is final: every value is written with the Redis time of the read that
// preceded computing it (`since`), and a read finds it invalid when a tag or the path was
// invalidated after that time. Requests that wait for a fill in this process or on another
// instance are answered from a read made after the fill stored its entry, never from the
// fill's own copy, so none of them gets a body computed before an invalidation that answered
// before they asked.
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { channels, throttledWarn } from '../core/index.js'
import type { WarnLogger } from '../core/index.js'
import { encodingClass, entryKey, keptHeaders, mergeVary, normalizeQuery, notModified, parseVary, pathOf, privateCacheControl, requestsRevalidation, strongEtag, uncacheableReason, varyPart } from './http.js'
import type { ResponseEntry } from './http.js'
import type { CacheRequest, ResolvedRouteCache, RouteInvalidation } from './options.js'
import type { Lookup, ResponseStore } from './store.js'

/** A request as the engine reads it. */
export interface EngineRequest extends CacheRequest {
  method: string
}

interface Fill {
  /** The entry for requests that joined the fill, read back from Redis after it was stored; null: they run their own handler. */
  promise: Promise<ResponseEntry | null>
  done: (entry: Promise<ResponseEntry | null> | null) => void
  release: () => Promise<void>
  joined: number
  /** Once stored: the read-back that a request joining after the settle gets (see settle). */
  late?: () => Promise<ResponseEntry | null>
}

/** One request's place in the cache, from `begin()` to `settle()`; the door keeps it with the request. */
export interface Ticket {
  route: ResolvedRouteCache
  key: string
  path: string
  shared: boolean
  /** The headers the key varies on (the route's and those learned from responses), sorted. */
  vary: readonly string[]
  readAt?: string
  fill?: Fill
  /** A stale entry to serve if the handler fails (stale-if-error). */
  fallback?: ResponseEntry
  /** The request is this process's stale-while-revalidate refresh. */
  refresh?: boolean
}

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

/** What the door sends instead of the handler's response: the payload, headers to add, and a status when it changes (a stale entry served for an error). */
export interface Captured {
  payload: unknown
  headers: HeaderSet
  status?: number
}

/** The request header that marks the refresh requests this process replays for stale-while-revalidate. */
export const REFRESH_HEADER = 'x-frs-cache-refresh'

/** The most response `Vary` headers a route learns beyond its `vary` option; a response that names more is not stored. */
const MAX_LEARNED_VARY = 8

export interface ResponseCacheEngineOptions {
  store: ResponseStore
  /** Sends a GET through the app (for a stale-while-revalidate refresh) with these headers; `request` is the one that found the entry stale. */
  replay: (url: string, headers: Record<string, string>, request: EngineRequest) => Promise<unknown>
  /** Where Redis failures are logged: at most one line per 10 s, with the count of those left out. */
  log: WarnLogger
}

export class ResponseCacheEngine {
  readonly #store: ResponseStore
  readonly #replay: ResponseCacheEngineOptions['replay']
  readonly #warn: (obj: object, msg: string) => void
  // One handler run per key in this process; the others wait for its entry.
  readonly #inflight = new Map<string, Fill>()
  readonly #refreshing = new Set<string>()
  // Marks the refresh requests this process replays; clients cannot guess it.
  readonly #refreshSecret = randomBytes(24).toString('base64url')
  // Request headers a route's responses named in `Vary` beyond its `vary` option, merged and sorted.
  readonly #learned = new WeakMap<ResolvedRouteCache, readonly string[]>()

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
    if (identity === undefined) return this.#bypass(request, route) // credentials on a route that does not key by user
    const path = pathOf(request.url)
    const vary = this.#learned.get(route) ?? route.vary
    const key = entryKey({
      path: route.keyOf === undefined ? path : route.keyOf(request),
      query: route.keyOf === undefined ? normalizeQuery(request.url) : '',
      vary: varyPart(vary, vary.map((h) => h === 'accept-encoding' ? encodingClass(headerValue(request.headers[h])) : headerValue(request.headers[h]))),
      user: identity ?? undefined
    })
    const ticket: Ticket = { route, key, path, shared: identity === null, vary }
    const refresh = headerValue(request.headers[REFRESH_HEADER])
    if (refresh !== undefined && refresh.startsWith(this.#refreshSecret + ':')) {
      // A stale-while-revalidate refresh: its value is computed after the stale read, and is
      // written with that read's time, so an invalidation meanwhile wins.
      ticket.readAt = refresh.slice(this.#refreshSecret.length + 1)
      ticket.refresh = true
      this.#startFill(ticket)
      return { action: 'run', ticket }
    }
    const found = await this.#store.get(key, false, route.local).catch((err: unknown) => { this.#warn({ err }, 'response cache unavailable; serving without it') })
    if (found === undefined) return this.#bypass(request, route)
    ticket.readAt = found.readAt
    if (found.entry !== undefined) {
      const served = this.#fromLookup(request, ticket, found, found.entry)
      if (served !== undefined) return served
      // A fresh hit read without the time (a client's no-cache runs the handler anyway): the
      // value it computes needs a basis from before it starts.
      ticket.readAt ??= await this.#store.now().catch(() => undefined)
    }
    const waiting = this.#inflight.get(key)
    if (waiting !== undefined && ticket.fallback === undefined) {
      waiting.joined++
      const entry = await (waiting.late?.() ?? waiting.promise)
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
    this.settle(ticket, after.entry, true)
    return this.#serve(request, after.entry, 'HIT', ticket)
  }

  /** A found entry: served fresh or stale, or kept as the stale-if-error fallback of a miss (undefined: run the handler). */
  #fromLookup (request: EngineRequest, ticket: Ticket, found: Lookup, entry: ResponseEntry): Begin | undefined {
    const { route } = ticket
    if (found.state === 'fresh') {
      if (!(route.revalidateOnNoCache && requestsRevalidation(headerValue(request.headers['cache-control']), headerValue(request.headers.pragma)))) {
        return this.#serve(request, entry, 'HIT', ticket)
      }
      ticket.fallback = entry
      return undefined
    }
    // Stale: inside stale-while-revalidate, served while one refresh runs; past it (inside
    // stale-if-error), the handler runs and the entry stands by for its failure.
    if (route.grace > 0 && (found.age ?? Infinity) <= route.ttl + route.grace) {
      this.#refresh(request, ticket)
      return this.#serve(request, entry, 'STALE', ticket)
    }
    if (route.staleIfError > 0) ticket.fallback = entry
    return undefined
  }

  /**
   * Stores the handler's response when it may be stored; resolves the payload to send (a
   * buffered stream becomes its bytes) and the headers to add (X-Cache, Age, ETag,
   * Cache-Control, Vary). A failed handler (5xx) with a stale entry at hand sends the entry.
   */
  async capture (ticket: Ticket, request: EngineRequest, response: HandlerResponse): Promise<Captured> {
    if (ticket.fill === undefined) return { payload: response.payload, headers: {} }
    const { payload } = response
    if (response.status >= 500 && ticket.fallback !== undefined) {
      const stale = ticket.fallback
      this.settle(ticket, null)
      this.#warn({ status: response.status, path: ticket.path }, 'response cache: the handler failed; serving the stale entry (stale-if-error)')
      this.#published(request, ticket, 'STALE')
      return { payload: stale.body, status: stale.status, headers: this.#headersOf(stale, 'STALE', ticket, true) }
    }
    let reason = request.method === 'HEAD' ? 'HEAD' : uncacheableReason(response.status, ticket.route.statuses, response.headers, ticket.shared ? undefined : ticket.route.sessionCookies)
    reason ??= this.#learnVary(ticket, response.headers.vary)
    let body: Buffer | undefined
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) body = Buffer.from(payload)
    else if (payload instanceof Readable && ticket.route.bufferStreams && reason === undefined) body = await collect(payload)
    else reason ??= 'a stream'
    if (reason !== undefined || body === undefined) {
      this.settle(ticket, null)
      this.#published(request, ticket, 'BYPASS')
      return { payload: body ?? payload, headers: { 'x-cache': 'BYPASS' } }
    }
    const ownEtag = headerValue(response.headers.etag as string | string[] | undefined)
    const entry: ResponseEntry = { status: response.status, headers: keptHeaders(response.headers, ticket.route.keepHeaders), body, etag: ownEtag ?? strongEtag(body), storedAt: Date.now(), tags: [] }
    let stored = false
    try {
      const tags = entry.tags = await ticket.route.tags(request)
      await this.#store.set(ticket.key, ticket.path, entry, { ttl: ticket.route.ttl, grace: Math.max(ticket.route.grace, ticket.route.staleIfError), tags: [...tags], since: ticket.readAt })
      stored = true
    } catch (err) {
      this.#warn({ err }, 'response cache: store failed')
    }
    this.settle(ticket, entry, stored)
    this.#published(request, ticket, 'MISS')
    return { payload: body, headers: this.#headersOf(entry, 'MISS', ticket, false) }
  }

  /**
   * Ends a ticket's fill and releases its fill lock. Requests that joined it get the entry as
   * Redis has it after the write (`stored`), or null (they run their own handler). Safe to call twice.
   */
  settle (ticket: Ticket | undefined, entry: ResponseEntry | null, stored = false): void {
    const fill = ticket?.fill
    if (ticket === undefined || fill === undefined) return
    ticket.fill = undefined
    const { key } = ticket
    if (entry === null || !stored) {
      if (this.#inflight.get(key) === fill) this.#inflight.delete(key)
      fill.done(null)
    } else {
      // One read back, sent after the write answered, for every request that joined.
      let reread: Promise<ResponseEntry | null> | undefined
      fill.late = () => (reread ??= this.#store.get(key, true).then((read) => read.state === 'fresh' ? read.entry ?? null : null, () => null))
      fill.done(fill.joined === 0 ? null : fill.late())
      // A lookup sent before the write may answer in the same tick as the write and reach the
      // in-flight check after this settle: the fill stays joinable for the rest of the tick.
      setImmediate(() => { if (this.#inflight.get(key) === fill) this.#inflight.delete(key) })
    }
    fill.release().catch((err: unknown) => this.#warn({ err }, 'response cache: lock release failed'))
  }

  /**
   * A response's `Vary` names headers the key does not hold: the route learns them (its next
   * keys hold them) and this response is not stored. Returns why not, or undefined.
   */
  #learnVary (ticket: Ticket, header: unknown): string | undefined {
    const names = parseVary(header)
    if (names === '*') return 'vary: *'
    const missing = names.filter((n) => !ticket.vary.includes(n))
    if (missing.length === 0) return undefined
    const current = this.#learned.get(ticket.route) ?? ticket.route.vary
    const merged = [...new Set([...current, ...missing])].sort()
    if (merged.length > ticket.route.vary.length + MAX_LEARNED_VARY) return 'varies on too many headers'
    this.#learned.set(ticket.route, merged)
    return `varies on ${missing.join(', ')}`
  }

  #startFill (ticket: Ticket): Fill {
    let done!: Fill['done']
    const promise = new Promise<ResponseEntry | null>((resolve) => { done = (entry) => { resolve(entry ?? null) } })
    const fill: Fill = { promise, done, release: async () => {}, joined: 0 }
    this.#inflight.set(ticket.key, fill)
    ticket.fill = fill
    return fill
  }

  #refresh (request: EngineRequest, ticket: Ticket): void {
    if (this.#refreshing.has(ticket.key) || ticket.readAt === undefined) return
    this.#refreshing.add(ticket.key)
    const headers: Record<string, string> = { [REFRESH_HEADER]: `${this.#refreshSecret}:${ticket.readAt}` }
    for (const name of [...ticket.vary, 'authorization', 'cookie']) {
      const value = headerValue(request.headers[name])
      if (value !== undefined) headers[name] = value
    }
    // One refresh across instances: a short lock; whoever does not get it leaves the refresh to the holder.
    this.#store.lockToRefresh(ticket.key, ticket.route.lockTtl)
      .then(async (release) => {
        if (release === null) return
        try { await this.#replay(request.url, headers, request) } finally { await release() }
      })
      .catch((err: unknown) => this.#warn({ err }, 'response cache: refresh failed'))
      .finally(() => this.#refreshing.delete(ticket.key))
  }

  #serve (request: EngineRequest, entry: ResponseEntry, status: 'HIT' | 'STALE', ticket: Ticket): Begin {
    this.#published(request, ticket, status)
    const ims = headerValue(request.headers['if-modified-since'])
    if (notModified(headerValue(request.headers['if-none-match']), ims, entry.etag, entry.headers['last-modified'])) {
      return { action: 'serve', status: 304, headers: this.#headersOf(entry, status, ticket, true, true) }
    }
    return { action: 'serve', status: entry.status, headers: this.#headersOf(entry, status, ticket, true), body: entry.body }
  }

  #bypass (request: EngineRequest, route: ResolvedRouteCache): Begin {
    if (channels.responseCache.hasSubscribers) channels.responseCache.publish({ prefix: this.#store.prefix, route: route.route, method: request.method, result: 'BYPASS', refresh: false })
    return { action: 'run', headers: { 'x-cache': 'BYPASS' } }
  }

  #published (request: EngineRequest, ticket: Ticket, result: 'HIT' | 'MISS' | 'STALE' | 'BYPASS'): void {
    if (!channels.responseCache.hasSubscribers) return
    channels.responseCache.publish({ prefix: this.#store.prefix, route: ticket.route.route, method: request.method, result, refresh: ticket.refresh === true })
  }

  /**
   * The headers of a response from an entry: `withEntry` adds the entry's stored headers (a
   * hit), `validatorsOnly` keeps of those only what a 304 carries (RFC 9110 §15.4.5).
   * A handler's own Cache-Control is kept (made private on a per-user entry); else the route's.
   */
  #headersOf (entry: ResponseEntry, status: string, ticket: Ticket, withEntry: boolean, validatorsOnly = false): HeaderSet {
    const route = ticket.route
    const ageMs = Math.max(0, Date.now() - entry.storedAt)
    const own = entry.headers['cache-control']
    const out: HeaderSet = {}
    if (withEntry) {
      for (const [name, value] of Object.entries(entry.headers)) {
        if (!validatorsOnly || name === 'last-modified' || name === 'content-location' || name === 'expires') out[name] = value
      }
    }
    out['x-cache'] = status
    out.age = String(Math.floor(ageMs / 1000))
    out.etag = entry.etag
    const cc = own !== undefined ? (ticket.shared ? own : privateCacheControl(own)) : route.cacheControl?.(route.ttl - ageMs, ticket.shared)
    if (cc !== undefined) out['cache-control'] = cc
    const entryVary = entry.headers.vary
    if (ticket.vary.length > 0 || entryVary !== undefined) out.vary = mergeVary(entryVary === undefined ? [] : entryVary.split(',').map((v) => v.trim()).filter((v) => v !== ''), ticket.vary)
    if (route.tagHeader !== undefined && ticket.shared && entry.tags.length > 0) {
      const tags = entry.tags.filter((t) => /^[\x21-\x2b\x2d-\x7e]+$/.test(t))
      if (tags.length > 0) out[route.tagHeader.name] = tags.join(route.tagHeader.separator)
    }
    return out
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
