/// <reference types="@fastify/session" preserve="true" />
/// <reference types="@fastify/cookie" preserve="true" />
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { CachingSigner, GONE, LocalSessionCache, RedisSessionStore, resolveSessionOptions } from '../lib/session/index.js'
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
  readonly localCache: LocalSessionCache | undefined
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
  const channel = keyspace.key('changed')
  let cache: LocalSessionCache | undefined
  if (options.localCache !== undefined) {
    const local = cache = new LocalSessionCache(client, channel, options.localCache, (live, err) => {
      if (live) fastify.log.info('session localCache: subscribed to invalidations, serving reads from memory')
      else fastify.log.warn({ err }, 'session localCache: invalidation subscription lost; every read goes to Redis until it is back')
    })
    local.start()
    fastify.addHook('onClose', () => local.close())
  }
  const store = new RedisSessionStore({
    client,
    keyspace,
    channel,
    cache,
    idleTimeout: options.idleTimeout,
    absoluteTimeout: options.absoluteTimeout,
    rolling: options.rolling,
    tombstoneTtl: options.tombstoneTtl,
    userIdField: options.userIdField,
    maxSessionsPerUser: options.maxSessionsPerUser
  })

  const signer = new CachingSigner(options.secret)
  if (!fastify.hasDecorator('parseCookie')) await fastify.register(fastifyCookie)
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

  // Runs after @fastify/session's onSend, which saves a session only when its data changed.
  // - A destroyed session (null), or one whose write was refused (logged out or revoked while
  //   this request ran), must not leave its id in the browser.
  // - A change of the cookie's max age alone (remember me) is saved here.
  // - A live cookie signed with an older secret is signed again with the newest.
  // (When loading failed, request.session is a bare {}: isStored() is false for it.)
  type Live = fastifySession.FastifySessionObject & { [GONE]?: boolean }
  const clear = { path: options.cookie.path, domain: options.cookie.domain ?? null } as unknown as Parameters<FastifyReply['clearCookie']>[1]
  fastify.addHook('onSend', (request, reply, _payload, done) => {
    const session = request.session as unknown as Live | null
    if (session === null || session[GONE] === true) {
      reply.clearCookie(options.cookieName, clear)
    } else if (store.isStored(session) && !session.isSaved() && !(session.cookie.secure === true && request.protocol !== 'https')) {
      if (store.maxAgeChanged(session)) {
        session.save((err?: Error) => {
          if (err !== undefined && err !== null) return done(err)
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

  // Sets the session cookie, replacing the clear that @fastify/session adds when the cookie
  // it received was signed by an older secret and the session was not saved.
  const cleared = `${options.cookieName}=;`
  function sendCookie (reply: FastifyReply, session: Live): void {
    const headers = reply.getHeader('set-cookie')
    if (Array.isArray(headers)) reply.header('set-cookie', headers.filter((h) => !h.startsWith(cleared)))
    else if (typeof headers === 'string' && headers.startsWith(cleared)) reply.removeHeader('set-cookie')
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
  fastify.redisSuite.addHealthSection('session', () => cache === undefined
    ? { ...store.stats }
    : { ...store.stats, localCache: { live: cache.live, size: cache.size, ...cache.stats } })
}

export default fp(sessionPlugin, {
  name: 'fastify-redis-suite/session',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
