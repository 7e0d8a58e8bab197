import { Batcher, channels, defineScripts, SessionEndedError, SessionUnavailableError, timedCall } from '../core/index.js'
import type { SessionEvent } from '../core/index.js'
import { decodeRecord, encodeRecord, encodeUser } from './record.js'
import { UserIndex } from './users.js'
import type { SessionStoreOptions } from './options.js'
import { sessionScripts } from './scripts.js'

/** Where a loaded session came from; kept in the session under {@link META_FIELD}. */
export interface SessionMeta {
  /** Creation time in ms (Redis clock): the start of the absolute lifetime. */
  created: number
  /** The owner's user id as stored (URI-encoded), or `''`. */
  user: string
  /** The idle TTL (cookie max age) as stored, so that a change of it alone is saved too. */
  maxAge: number
}

/** The session field that marks a session loaded from (or created in) Redis. Reserved. */
export const META_FIELD = '_frs'

/** Set on a session whose write was refused because it is gone (destroyed, revoked, expired). */
export const GONE = Symbol('frs.session.gone')

/** A write of a loaded session: key, idle TTL, owner, JSON, creation time it was loaded with. */
type Write = [string, number, string, string, number]
/** 1, previous owner, ms left when written; 0 when the session is gone. */
type Written = [0, string, number] | [1, string, number]

type Callback<T = void> = (err?: Error | null, value?: T) => void

interface StoredSession {
  [field: string]: unknown
  cookie?: { originalMaxAge?: number | null, expires?: Date | null }
  isModified?: () => boolean
  [GONE]?: boolean
}

/**
 * A store for @fastify/session on ioredis: JSON records, TTL from the cookie, written only
 * when the data changed; a read renews the idle TTL inside the read (one round trip), and a
 * write never recreates a session that is gone.
 */
export class RedisSessionStore {
  readonly users: UserIndex
  readonly stats = { loaded: 0, created: 0, updated: 0, unchanged: 0, refused: 0, destroyed: 0, errors: 0 }
  readonly #o: SessionStoreOptions
  readonly #origin: string
  readonly #reads: Batcher<string, [string, number] | null>
  readonly #writes: Batcher<Write, Written>

  constructor (opts: SessionStoreOptions) {
    this.#o = opts
    defineScripts(opts.client, sessionScripts)
    this.#origin = opts.cache?.origin ?? '-'
    this.users = new UserIndex(opts, this)
    this.#reads = new Batcher({ client: opts.client, send: (keys) => this.#read(keys), maxInFlight: Infinity, feature: 'session' })
    this.#writes = new Batcher({ client: opts.client, send: (writes) => this.#write(writes), maxInFlight: Infinity, feature: 'session' })
  }

  /** The store as one request sees it: see {@link RequestSessionStore}. */
  forRequest (): RequestSessionStore {
    return new RequestSessionStore(this)
  }

  /** The Redis key of a session id. */
  key (sessionId: string): string {
    return this.#o.keyspace.key('s', sessionId)
  }

  /** The user id of a session as stored (URI-encoded, so that its length is its byte length). */
  userOf (session: Record<string, unknown>): string {
    return encodeUser(session[this.#o.userIdField])
  }

  /** Whether a session was loaded from (or created in) Redis by this store. */
  isStored (session: object): boolean {
    return (session as StoredSession)[META_FIELD] !== undefined
  }

  /** Whether a stored session's cookie max age (its idle TTL) differs from the stored one. */
  maxAgeChanged (session: object): boolean {
    const meta = (session as StoredSession)[META_FIELD] as SessionMeta
    return this.#maxAge(session as StoredSession) !== meta.maxAge
  }

  /** When a stored session's cookie expires: its absolute deadline (Redis renews the idle TTL). */
  cookieExpiry (session: object): Date {
    const meta = (session as StoredSession)[META_FIELD] as SessionMeta
    return new Date(meta.created + this.#o.absoluteTimeout)
  }

  get (sessionId: string, cb: Callback<Record<string, unknown> | null>): void {
    const key = this.key(sessionId)
    const cache = this.#o.cache
    const held = cache?.get(key, Date.now())
    if (held !== undefined) {
      if (channels.session.hasSubscribers) this.#publish({ operation: 'read', source: 'local', found: true })
      return this.#deliver(held, cb)
    }
    const ticket = cache?.begin() ?? 0
    this.#reads.add(key, key).then((reply) => {
      cache?.end(key, ticket, reply?.[0], reply?.[1] ?? 0, Date.now())
      if (channels.session.hasSubscribers) this.#publish({ operation: 'read', source: 'redis', found: reply !== null })
      if (reply === null) return cb(null, null)
      this.#loaded(reply[0], cb)
    }, (err: unknown) => {
      cache?.end(key, ticket, undefined, 0, 0)
      cb(this.#fail(err))
    })
  }

  // Reads are batched by event-loop turn (see Batcher): one script call reads the sessions of
  // a turn's requests (each key once) and renews their TTLs. No read waits for a call in
  // flight: with Redis 1 ms away that wait cut reads from about 2,100 to 1,225 req/s, and on
  // loopback it gave nothing measurable.
  async #read (keys: string[]): Promise<Array<[string, number] | null>> {
    const { client, absoluteTimeout, rolling, tombstoneTtl, channel } = this.#o
    const index = new Map<string, number>()
    for (const key of keys) if (!index.has(key)) index.set(key, index.size)
    const reply = await client.frsSessionGet(index.size, ...index.keys(), absoluteTimeout, rolling ? '1' : '0', tombstoneTtl, channel, this.#origin)
    return keys.map((key) => {
      const i = 2 * (index.get(key) as number)
      const record = reply[i]
      return typeof record === 'string' ? [record, reply[i + 1] as number] : null
    })
  }

  // Writes of loaded sessions are batched the same way; a batch runs them in arrival order,
  // each as if alone, so two writes of one session still end with the later one.
  async #write (writes: Write[]): Promise<Written[]> {
    const args: Array<string | number> = [writes.length]
    for (const w of writes) args.push(w[0])
    args.push(this.#o.absoluteTimeout, this.#o.channel, this.#origin)
    for (const w of writes) args.push(w[1], w[2], w[3], w[4])
    const reply = await this.#o.client.frsSessionUpdate(...(args as [number, ...string[]]))
    return writes.map((_, i) => [reply[3 * i] === 1 ? 1 : 0, String(reply[3 * i + 1]), Number(reply[3 * i + 2])])
  }

  // Reads served from memory are answered together at the end of the event-loop turn, as
  // replies from Redis are: a turn's responses then leave in one burst. Answering each at once
  // was measured slower (about 17,000 req/s against 25,000 on the session bench's loopback).
  #deliver (value: string, cb: Callback<Record<string, unknown> | null>): void {
    this.#held.push(value, cb)
    if (this.#held.length === 2) setImmediate(this.#deliverHeld)
  }

  readonly #held: Array<string | Callback<Record<string, unknown> | null>> = []
  readonly #deliverHeld = (): void => {
    const held = this.#held.splice(0)
    let failure: { err: unknown } | undefined
    for (let i = 0; i < held.length; i += 2) {
      try {
        this.#loaded(held[i] as string, held[i + 1] as Callback<Record<string, unknown> | null>)
      } catch (err) {
        failure ??= { err } // the other requests of the turn still get their sessions
      }
    }
    if (failure !== undefined) throw failure.err
  }

  #loaded (value: string, cb: Callback<Record<string, unknown> | null>): void {
    let record = null
    try {
      record = decodeRecord(value)
    } catch {} // an unreadable record is no session: a new one starts, the old key expires
    if (record === null) return cb(null, null)
    this.stats.loaded++
    const meta: SessionMeta = { created: record.created, user: record.user, maxAge: record.maxAge }
    const session = record.data
    session.cookie = { originalMaxAge: record.maxAge }
    session[META_FIELD] = meta
    cb(null, session)
  }

  set (sessionId: string, session: object, cb: Callback): void {
    this.#save(sessionId, session as StoredSession).then(() => cb(), (err: unknown) => cb(this.#fail(err)))
  }

  destroy (sessionId: string, cb: Callback): void {
    this.destroySession(sessionId).then(() => cb(), (err: unknown) => cb(this.#fail(err)))
  }

  /** Ends one session: a tombstone replaces it, and its user's index forgets it. */
  async destroySession (sessionId: string, onlyUser = ''): Promise<boolean> {
    const key = this.key(sessionId)
    const [done, user, existed] = await timedCall(this.#o.client, 'session', () => this.#o.client.frsSessionDestroy(key, this.#o.tombstoneTtl, onlyUser, this.#o.channel, this.#origin))
    if (done === 0) return false
    this.#o.cache?.drop(key)
    this.stats.destroyed++
    if (existed === 1 && channels.session.hasSubscribers) this.#publish({ operation: 'revoke' })
    // Second step, other slot: a failure leaves a stale entry, which reads skip.
    if (user !== undefined && user !== '') await this.users.remove(user, sessionId).catch(() => {})
    return user !== undefined && user !== ''
  }

  async #save (sessionId: string, session: StoredSession): Promise<void> {
    const { client, absoluteTimeout } = this.#o
    if (session[GONE] === true) return // refused once: it is gone for good (tombstone)
    const meta = session[META_FIELD] as SessionMeta | undefined
    const maxAge = this.#maxAge(session)
    if (meta !== undefined && maxAge === meta.maxAge && session.isModified?.() === false) {
      this.stats.unchanged++ // the read already renewed the TTL
      if (channels.session.hasSubscribers) this.#publish({ operation: 'unchanged' })
      return this.#cookieUntil(session, meta.created)
    }
    const user = this.userOf(session)
    const json = JSON.stringify(session, function (this: unknown, key, value) {
      return this === session && (key === 'cookie' || key === META_FIELD) ? undefined : value
    })
    // The user index is written before the session, so a session never has an owner that
    // revokeUser() cannot find; an index entry without its session is harmless.
    let evicted: string[] = []
    if (user !== '' && user !== meta?.user) evicted = await this.users.add(user, sessionId, meta === undefined ? 0 : meta.created + absoluteTimeout)
    if (meta === undefined) {
      const created = await timedCall(client, 'session', () => client.frsSessionCreate(this.key(sessionId), maxAge, absoluteTimeout, user, json))
      if (created === null) return this.#refuse(session)
      this.stats.created++
      if (channels.session.hasSubscribers) this.#publish({ operation: 'create' })
      session[META_FIELD] = { created, user, maxAge } satisfies SessionMeta
      this.#cookieUntil(session, created)
    } else {
      const key = this.key(sessionId)
      const cache = this.#o.cache
      const ticket = cache?.begin() ?? 0
      let reply: Written
      try {
        reply = await this.#writes.add(key, [key, maxAge, user, json, meta.created])
      } catch (err) {
        cache?.end(key, ticket, undefined, 0, 0)
        cache?.drop(key) // it may or may not have been written
        throw err
      }
      const [written, previous, left] = reply
      // This instance keeps what it wrote (the record exactly as the script builds it); a
      // read of the old record that ran before the write replied before it, so it is replaced.
      cache?.end(key, ticket, written === 0 ? undefined : encodeRecord(meta.created, maxAge, user, json), left, Date.now())
      if (written === 0) {
        cache?.drop(key)
        return this.#refuse(session)
      }
      this.stats.updated++
      if (channels.session.hasSubscribers) this.#publish({ operation: 'update' })
      if (previous !== '' && previous !== user) await this.users.remove(previous, sessionId).catch(() => {})
      session[META_FIELD] = { created: meta.created, user, maxAge } satisfies SessionMeta
      this.#cookieUntil(session, meta.created)
    }
    for (const id of evicted) if (id !== sessionId) await this.destroySession(id, user)
  }

  #publish (event: Omit<SessionEvent, 'prefix'>): void {
    channels.session.publish({ prefix: this.#o.keyspace.prefix, ...event })
  }

  #maxAge (session: StoredSession): number {
    return Math.max(1, Math.round(session.cookie?.originalMaxAge ?? this.#o.idleTimeout))
  }

  #refuse (session: StoredSession): void {
    this.stats.refused++
    if (channels.session.hasSubscribers) this.#publish({ operation: 'refused' })
    session[GONE] = true
  }

  // The cookie lasts until the absolute deadline: the idle timeout is Redis's TTL, renewed by
  // reads, so the cookie need not be sent again while the session is in use.
  #cookieUntil (session: StoredSession, created: number): void {
    if (session.cookie !== undefined) session.cookie.expires = new Date(created + this.#o.absoluteTimeout)
  }

  #fail (err: unknown): Error {
    this.stats.errors++
    if (channels.session.hasSubscribers) this.#publish({ operation: 'error' })
    return err instanceof SessionUnavailableError ? err : new SessionUnavailableError({ cause: err })
  }
}

/**
 * The store as one request sees it; the plugin gives each request's session this view
 * (a regenerated or reloaded session keeps it), so that:
 * - one request makes at most one attempt that fails on Redis: after a call of the request
 *   failed (a timeout, a lost connection), its later calls (regenerate's set after its
 *   destroy, the error response's save) fail at once with the same error, and the request
 *   answers within one `commandTimeout`. Nothing is written that the 503 does not cover.
 * - a write refused because the session ended while the request ran (logout, revokeUser,
 *   expiry) rejects `save()` with FRS_SESSION_ENDED when the route calls it; the automatic save
 *   at the end of the request (`sending`) only marks the session, and the cookie is cleared.
 */
export class RequestSessionStore {
  /** Set when the response is being sent (@fastify/session's onSend save, the plugin's). */
  sending = false
  readonly #store: RedisSessionStore
  #failed: Error | undefined

  constructor (store: RedisSessionStore) {
    this.#store = store
  }

  /** The error of this request's store call that failed, if one did. */
  get failed (): Error | undefined {
    return this.#failed
  }

  get (sessionId: string, cb: Callback<Record<string, unknown> | null>): void {
    if (this.#failed !== undefined) return process.nextTick(cb, this.#failed)
    this.#store.get(sessionId, (err, value) => {
      if (err !== undefined && err !== null) this.#failed = err
      cb(err, value)
    })
  }

  set (sessionId: string, session: object, cb: Callback): void {
    if (this.#failed !== undefined) return process.nextTick(cb, this.#failed)
    this.#store.set(sessionId, session, (err) => {
      if (err !== undefined && err !== null) {
        this.#failed = err
        return cb(err)
      }
      if ((session as StoredSession)[GONE] === true && !this.sending) return cb(new SessionEndedError())
      cb()
    })
  }

  destroy (sessionId: string, cb: Callback): void {
    if (this.#failed !== undefined) return process.nextTick(cb, this.#failed)
    this.#store.destroy(sessionId, (err) => {
      if (err !== undefined && err !== null) this.#failed = err
      cb(err)
    })
  }
}
