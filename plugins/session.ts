/// <reference types="@fastify/session" preserve="true" />
/// <reference types="@fastify/cookie" preserve="true" />
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { checkKeys, InvalidOptionError, optionKeys, parsePositiveDuration, REGISTER_KEYS } from '../lib/core/index.js'
import type { Duration } from '../lib/core/index.js'
import { CachingSigner, GONE, LocalSessionCache, RedisSessionStore } from '../lib/session/index.js'
import type { LocalCacheOptions, UserSession } from '../lib/session/index.js'

export interface SessionCookieOptions {
  /** Send the cookie over HTTPS only; `'auto'` follows the request's protocol. @default process.env.NODE_ENV === 'production' */
  secure?: boolean | 'auto'
  /** @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none'
  /** @default true */
  httpOnly?: boolean
  /** @default '/' */
  path?: string
  /** @default undefined (host only) */
  domain?: string
}

export interface SessionPluginOptions {
  /**
   * Cookie signing secret of at least 32 characters, or several, newest first, to rotate (the
   * first signs, all verify). Required: it may come straight from `process.env`, and
   * `undefined` stops startup with an error naming it. @default none (required)
   */
  secret: string | string[] | undefined
  /** Named connection of the core plugin. @default the default connection */
  connection?: string
  /** Key namespace. @default 'default' */
  namespace?: string
  /** @default 'sessionId' */
  cookieName?: string
  /** Name the cookie `__Host-<cookieName>` (needs `secure: true`, path `/`, no domain). @default false */
  hostPrefix?: boolean
  /** Cookie attributes. @default { secure: NODE_ENV === 'production', sameSite: 'lax', httpOnly: true, path: '/' } */
  cookie?: SessionCookieOptions
  /** Idle timeout: the Redis TTL, renewed by each request when `rolling`. @default '1d' */
  idleTimeout?: Duration
  /** Absolute lifetime from creation, which rolling renewal never extends; the cookie expires then. @default '7d' */
  absoluteTimeout?: Duration
  /** Renew the idle timeout on every request (by PEXPIRE inside the read). @default true */
  rolling?: boolean
  /** Store sessions that hold no data (anonymous traffic). @default false */
  saveUninitialized?: boolean
  /** The session field holding the user id, for the per-user index. @default 'userId' */
  userIdField?: string
  /** The most sessions of one user; creating more ends the oldest. @default 100 */
  maxSessionsPerUser?: number
  /** How long a destroyed session id stays blocked against writes still in flight. @default '5m' */
  tombstoneTtl?: Duration
  /**
   * Serve repeated reads of a session from this instance's memory for up to `ttl`. Any change
   * or end of a session (write, logout, revokeUser, from any instance) is published by Redis
   * and drops it from every instance's cache; while that subscription is down nothing is
   * cached. A read served from memory does not renew the idle TTL: an active session is
   * renewed by its next read from Redis, at least once per `ttl`. `true` takes the defaults.
   * @default false
   */
  localCache?: boolean | LocalCacheOption
}

export interface LocalCacheOption {
  /** How long a read may be served from memory. @default '1s' */
  ttl?: Duration
  /** The most sessions held; the oldest go first. @default 10000 */
  max?: number
}

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

const MIN_SECRET = 32

const KEYS = [...REGISTER_KEYS, ...optionKeys<SessionPluginOptions>({
  secret: true, connection: true, namespace: true, cookieName: true, hostPrefix: true, cookie: true, idleTimeout: true, absoluteTimeout: true, rolling: true, saveUninitialized: true, userIdField: true, maxSessionsPerUser: true, tombstoneTtl: true, localCache: true
})]
const COOKIE_KEYS = optionKeys<SessionCookieOptions>({ secure: true, sameSite: true, httpOnly: true, path: true, domain: true })
const LOCAL_CACHE_KEYS = optionKeys<LocalCacheOption>({ ttl: true, max: true })

function resolveOptions (opts: SessionPluginOptions) {
  checkKeys(opts, KEYS, 'session')
  if (opts.secret === undefined) throw new InvalidOptionError('secret', `it is undefined (an unset environment variable such as SESSION_SECRET?); a secret of at least ${MIN_SECRET} characters is required (or an array of them, newest first)`)
  const secrets: unknown[] = Array.isArray(opts.secret) ? opts.secret : [opts.secret]
  if (secrets.length === 0) throw new InvalidOptionError('secret', `a secret of at least ${MIN_SECRET} characters is required (or an array of them, newest first)`)
  secrets.forEach((s, i) => {
    const name = Array.isArray(opts.secret) ? `secret[${i}]` : 'secret'
    if (typeof s !== 'string' || s.length < MIN_SECRET) throw new InvalidOptionError(name, `expected a string of at least ${MIN_SECRET} characters, got ${typeof s === 'string' ? `${s.length} characters` : typeof s}`)
  })
  const cookie = opts.cookie ?? {}
  checkKeys(cookie, COOKIE_KEYS, 'session.cookie')
  const secure = cookie.secure ?? process.env.NODE_ENV === 'production'
  if (secure !== true && secure !== false && secure !== 'auto') throw new InvalidOptionError('cookie.secure', 'expected true, false or "auto"')
  const sameSite = cookie.sameSite ?? 'lax'
  if (!['lax', 'strict', 'none'].includes(sameSite)) throw new InvalidOptionError('cookie.sameSite', 'expected "lax", "strict" or "none"')
  if (sameSite === 'none' && secure !== true) throw new InvalidOptionError('cookie.sameSite', 'browsers accept sameSite "none" only with secure: true')
  const path = cookie.path ?? '/'
  const hostPrefix = opts.hostPrefix ?? false
  if (hostPrefix && (secure !== true || path !== '/' || cookie.domain !== undefined)) {
    throw new InvalidOptionError('hostPrefix', 'a __Host- cookie needs cookie.secure: true, path "/" and no domain')
  }
  const cookieName = opts.cookieName ?? 'sessionId'
  if (!/^[A-Za-z0-9_-]+$/.test(cookieName)) throw new InvalidOptionError('cookieName', 'expected letters, digits, "_" or "-"')
  const maxSessionsPerUser = opts.maxSessionsPerUser ?? 100
  if (!Number.isSafeInteger(maxSessionsPerUser) || maxSessionsPerUser < 1) throw new InvalidOptionError('maxSessionsPerUser', 'expected a positive integer')
  const userIdField = opts.userIdField ?? 'userId'
  if (typeof userIdField !== 'string' || userIdField === '' || userIdField === 'cookie' || userIdField === '_frs') throw new InvalidOptionError('userIdField', 'expected a field name other than "cookie" and "_frs"')
  const idleTimeout = parsePositiveDuration(opts.idleTimeout ?? '1d', 'idleTimeout')
  const localCache = resolveLocalCache(opts.localCache)
  const absoluteTimeout = parsePositiveDuration(opts.absoluteTimeout ?? '7d', 'absoluteTimeout')
  return Object.freeze({
    secret: secrets as string[],
    connection: opts.connection,
    namespace: opts.namespace,
    cookieName: hostPrefix ? `__Host-${cookieName}` : cookieName,
    cookie: { secure, sameSite, httpOnly: cookie.httpOnly ?? true, path, domain: cookie.domain, maxAge: idleTimeout },
    idleTimeout,
    absoluteTimeout,
    rolling: opts.rolling ?? true,
    saveUninitialized: opts.saveUninitialized ?? false,
    userIdField,
    maxSessionsPerUser,
    tombstoneTtl: parsePositiveDuration(opts.tombstoneTtl ?? '5m', 'tombstoneTtl'),
    localCache
  })
}

function resolveLocalCache (option: unknown): LocalCacheOptions | undefined {
  if (option === undefined || option === false) return undefined
  const o = (option === true ? {} : option) as LocalCacheOption
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new InvalidOptionError('localCache', 'expected true, false or { ttl, max }')
  checkKeys(o, LOCAL_CACHE_KEYS, 'session.localCache')
  const max = o.max ?? 10_000
  if (!Number.isSafeInteger(max) || max < 1) throw new InvalidOptionError('localCache.max', 'expected a positive integer')
  return { ttl: parsePositiveDuration(o.ttl ?? '1s', 'localCache.ttl'), max }
}

const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = async (fastify, opts) => {
  const options = resolveOptions(opts)
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
