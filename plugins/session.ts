/// <reference types="@fastify/session" preserve="true" />
/// <reference types="@fastify/cookie" preserve="true" />
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { CachingSigner, createSessionStore, GONE, RequestSessionStore, resolveSessionOptions, sessionHealth } from '../lib/session/index.js'
import type { LocalTier } from '../lib/core/index.js'
import type { RedisSessionStore } from '../lib/session/index.js'
import type { SessionPluginOptions, UserSession } from '../lib/session/index.js'

export type { LocalCacheOption, SessionCookieOptions, SessionPluginOptions } from '../lib/session/index.js'

/** `fastify.sessions`: sessions seen from the server side. */
export interface SessionManager {
  /** Live sessions of a user, oldest first. */
  listForUser: (userId: string | number) => Promise<UserSession[]>
  /** Ends every session of a user on every instance (log out everywhere); returns how many were live. */
  revokeUser: (userId: string | number) => Promise<number>
  /** Ends one session by id. */
  destroy: (sessionId: string) => Promise<void>
  /** The store, for @fastify/session-level access and stats. */
  readonly store: RedisSessionStore
  /** This instance's local cache when `localCache` is on: `live`, `size` and `stats`. */
  readonly localCache: LocalTier<string> | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Server-side session management (per-user index, revocation). */
    sessions: SessionManager
  }
}

const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = async (fastify, opts) => {
  const options = resolveSessionOptions(opts)
  const client = fastify.redisConnection(options.connection)
  const keyspace = fastify.redisSuite.keyspace('sess', options.namespace)
  // The response cache reads this: a request with the session cookie never gets a shared entry.
  fastify.redisSuite.credentialCookies.add(options.cookieName)
  const { store, cache } = createSessionStore({ client, keyspace, options, log: fastify.log })
  if (cache !== undefined) fastify.addHook('onClose', () => cache.close())

  const signer = new CachingSigner(options.secret)
  if (!fastify.hasDecorator('parseCookie')) await fastify.register(fastifyCookie)

  // Each request's session talks to the store through a view of its own (RequestSessionStore:
  // one failed attempt per request, FRS_SESSION_ENDED from save()). @fastify/session keeps the
  // store in a symbol of the session, which regenerate() and reload() pass on; the symbol is
  // found once, as the one that holds our store.
  let storeKey: symbol | undefined
  type Held = Record<symbol, unknown>
  const viewOf = (session: unknown): RequestSessionStore | undefined => {
    if (storeKey === undefined || session === null || typeof session !== 'object') return undefined
    const view = (session as Held)[storeKey]
    return view instanceof RequestSessionStore ? view : undefined
  }
  // Before @fastify/session's onSend: from here on a refused write only clears the cookie.
  fastify.addHook('onSend', (request, _reply, _payload, done) => {
    const view = viewOf(request.session)
    if (view !== undefined) view.sending = true
    done()
  })
  await fastify.register(fastifySession, {
    secret: signer,
    // Our get() yields a plain record (data, cookie max age, meta), which is what @fastify/session restores from.
    store: store as unknown as fastifySession.SessionStore,
    cookieName: options.cookieName,
    cookie: options.cookie,
    // Rolling renewal happens in Redis (PEXPIRE inside the read), and the cookie lasts until
    // the absolute deadline, so a request that only reads sends no cookie and saves nothing.
    rolling: false,
    saveUninitialized: options.saveUninitialized
  })
  fastify.addHook('onRequest', (request, _reply, done) => {
    const session = request.session as unknown
    if (session !== null && typeof session === 'object') {
      storeKey ??= Object.getOwnPropertySymbols(session).find((k) => (session as Held)[k] === store)
      if (storeKey !== undefined && (session as Held)[storeKey] === store) (session as Held)[storeKey] = store.forRequest()
    }
    done()
  })

  // Runs after @fastify/session's onSend, which saves a session only when its data changed.
  // - A destroyed session (null), or one whose write was refused (logged out or revoked while
  //   this request ran), must not leave its id in the browser.
  // - A change of the cookie's max age alone (remember me) is saved here.
  // - A live cookie signed with an older secret is signed again with the newest.
  // - A request whose store call failed (503) sets and clears no cookie: nobody is logged out.
  // At most one Set-Cookie of the session cookie leaves (RFC 6265 §4.1.1): a clear replaces the
  // cookie @fastify/session set for a write that was then refused.
  // (When loading failed, request.session is a bare {}: isStored() is false for it.)
  type Live = fastifySession.FastifySessionObject & { [GONE]?: boolean }
  const clear = { path: options.cookie.path, domain: options.cookie.domain ?? null } as unknown as Parameters<FastifyReply['clearCookie']>[1]
  fastify.addHook('onSend', (request, reply, _payload, done) => {
    const session = request.session as unknown as Live | null
    if (viewOf(session)?.failed !== undefined) {
      dropCookie(reply)
    } else if (session === null || session[GONE] === true) {
      dropCookie(reply)
      reply.clearCookie(options.cookieName, clear)
    } else if (store.isStored(session) && !session.isSaved() && !(session.cookie.secure === true && request.protocol !== 'https')) {
      if (store.maxAgeChanged(session)) {
        session.save((err?: Error) => {
          if (err !== undefined && err !== null) return done(err)
          dropCookie(reply)
          if (session[GONE] === true) reply.clearCookie(options.cookieName, clear)
          else sendCookie(reply, session)
          done()
        })
        return
      }
      const sent = request.cookies[options.cookieName]
      if (sent !== undefined && sent !== session.encryptedSessionId) {
        const verified = signer.unsign(sent) // a cache hit: @fastify/session verified it
        if (verified.valid && verified.value === session.sessionId) sendCookie(reply, session)
      }
    }
    done()
  })

  // Removes the Set-Cookie headers of the session cookie set so far (by @fastify/session: the
  // clear it adds when the cookie it received was signed by an older secret and the session
  // was not saved, or the cookie of a write that was then refused).
  const ours = `${options.cookieName}=`
  function dropCookie (reply: FastifyReply): void {
    const headers = reply.getHeader('set-cookie')
    if (Array.isArray(headers)) {
      const others = headers.filter((h) => !h.startsWith(ours))
      if (others.length === headers.length) return
      reply.removeHeader('set-cookie') // header() appends to a Set-Cookie already there
      if (others.length > 0) reply.header('set-cookie', others)
    } else if (typeof headers === 'string' && headers.startsWith(ours)) reply.removeHeader('set-cookie')
  }

  // Sets the session cookie, in place of any set before.
  function sendCookie (reply: FastifyReply, session: Live): void {
    dropCookie(reply)
    const { path, domain, secure, sameSite, httpOnly } = session.cookie
    reply.setCookie(options.cookieName, session.encryptedSessionId, { path, domain: domain ?? undefined, secure, sameSite, httpOnly, expires: store.cookieExpiry(session) } as never)
  }

  fastify.decorate<SessionManager>('sessions', {
    listForUser: (userId) => store.users.list(userId),
    revokeUser: (userId) => store.users.revoke(userId),
    destroy: async (sessionId) => { await store.destroySession(sessionId) },
    store,
    localCache: cache
  })
  fastify.redisSuite.addHealthSection('session', () => sessionHealth(store, cache))
}

export default fp(sessionPlugin, {
  name: 'fastify-redis-suite/session',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
