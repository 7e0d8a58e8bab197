// Redis sessions for Express on express-session: a Store over lib/session's RedisSessionStore
// (JSON records, idle TTL renewed inside the read, absolute lifetime, per-user index, a write
// never recreating a session that ended), and a middleware around express-session that keeps
// the promises the Fastify plugin keeps:
// - the response leaves only after the session is written: express-session sends the headers
//   (and its cookie) before its save has answered, so its end is held until then;
// - a write refused because the session ended while the request ran (logout, revokeUser,
//   expiry) clears the cookie instead of leaving a dead id in the browser;
// - a store failure answers 503 through `next(err)`, and sets or clears no cookie;
// - the cookie expires at the session's absolute deadline (Redis renews the idle timeout).
import type { ServerResponse } from 'node:http'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Session, SessionData, Store } from 'express-session'
import { GONE } from '../lib/session/index.js'
import type { RedisSessionStore, RequestSessionStore, ResolvedSessionOptions } from '../lib/session/index.js'

type Callback<T = void> = (err?: Error | null, value?: T) => void
type Backend = Pick<RedisSessionStore, 'get' | 'set' | 'destroy'>
type Live = Session & Partial<SessionData> & { [GONE]?: boolean }

/** What `redisSuite()` hands out for sessions. */
export interface ExpressSessions {
  /** The middleware: express-session on the Redis store, with the guarantees above. */
  middleware: RequestHandler
  /** The express-session Store alone, for an express-session you configure yourself. */
  store: Store
}

export async function createExpressSessions (lib: RedisSessionStore, options: ResolvedSessionOptions): Promise<ExpressSessions> {
  // Optional peer: loaded only when sessions are configured.
  const { default: expressSession } = await import('express-session')
  const { cookieName } = options
  const { path, domain, httpOnly, sameSite, secure } = options.cookie
  // Attributes of a loaded session's cookie: records hold data, not cookies.
  const attributes = { path, domain, httpOnly, sameSite, secure: secure === 'auto' ? undefined : secure }

  class RedisStore extends expressSession.Store {
    backend: Backend = lib

    override get (sid: string, cb: Callback<SessionData | null>): void {
      this.backend.get(sid, (err, record) => {
        if (err !== undefined && err !== null) return cb(err)
        if (record === null || record === undefined) return cb(null, null)
        const { originalMaxAge } = record.cookie as { originalMaxAge: number }
        // A Date, not its ISO string: express-session takes either, and a string is parsed back.
        record.cookie = { path, domain, httpOnly, sameSite, secure: attributes.secure, originalMaxAge, expires: lib.cookieExpiry(record) }
        cb(null, record as unknown as SessionData)
      })
    }

    override set (sid: string, session: SessionData, cb: Callback = noop): void {
      // The store sets the cookie's expiry to the absolute deadline; express-session's Cookie
      // then recomputes originalMaxAge from it, which is the idle timeout here: keep it.
      const idle = session.cookie?.originalMaxAge
      this.backend.set(sid, session, (err) => {
        if (session.cookie !== undefined) session.cookie.originalMaxAge = idle ?? null
        cb(err)
      })
    }

    override destroy (sid: string, cb: Callback = noop): void {
      this.backend.destroy(sid, (err) => cb(err))
    }
  }

  const store = new RedisStore()
  const session = expressSession({
    store,
    secret: options.secret,
    name: cookieName,
    cookie: { ...attributes, secure, maxAge: options.idleTimeout },
    resave: false,
    // Rolling renewal happens in Redis (PEXPIRE inside the read); the cookie lasts until the
    // absolute deadline, so a request that only reads sends no cookie.
    rolling: false,
    saveUninitialized: options.saveUninitialized,
    unset: 'keep'
  })

  const ours = `${cookieName}=`
  const middleware: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    let view: RequestSessionStore | undefined
    let hadSession = false
    const hold = holdForSave(res, {
      // Runs when express-session has saved (or found nothing to save) and ends the response.
      beforeSend: () => {
        const failed = view?.failed
        if (failed !== undefined) return failed
        const live = req.session as Live | undefined
        if (hadSession && (live === undefined || live[GONE] === true)) {
          dropCookie(res, ours)
          res.append('set-cookie', clearCookie(cookieName, path, domain))
        } else if (live !== undefined && lib.isStored(live)) {
          expireAtDeadline(res, ours, lib.cookieExpiry(live))
        }
        return undefined
      },
      fail: (err) => {
        for (const name of res.getHeaderNames()) res.removeHeader(name)
        next(err)
      }
    })
    let first = true
    session(req, res, (err?: unknown) => {
      // express-session also reports a failed save here, after the response started: the
      // held end (beforeSend) answers for that one.
      if (!first) return
      first = false
      if (err !== undefined && err !== null) return next(err)
      if (req.session !== undefined) {
        hadSession = true
        const perRequest = Object.create(store) as RedisStore
        view = lib.forRequest()
        perRequest.backend = view
        req.sessionStore = perRequest as unknown as typeof req.sessionStore
        if (secure === 'auto') req.session.cookie.secure = req.secure
      }
      const sessionEnd = res.end
      let ending = false
      res.end = function (this: Response, ...args: unknown[]) {
        // A second end is the error response of a failed save: it goes straight out.
        if (ending) return (hold.end as (...a: unknown[]) => Response).apply(this, args)
        ending = true
        if (view !== undefined) view.sending = true
        hold.start()
        return (sessionEnd as (...a: unknown[]) => Response).apply(this, args)
      } as typeof res.end
      next()
    })
  }
  return { middleware, store }
}

const noop = (): void => {}

interface SaveHooks {
  /** The save is done: an error to answer with instead (a failed store call), or undefined to send. */
  beforeSend: () => Error | undefined
  fail: (err: Error) => void
}

/**
 * Wraps the response under express-session, which ends it as: headers and all but the last byte
 * of the body, then (once saved) the end. From `start()` on, nothing goes out until that end.
 */
function holdForSave (res: ServerResponse, hooks: SaveHooks): { start: () => void, end: ServerResponse['end'] } {
  const { write, end, writeHead } = res
  const chunks: Buffer[] = []
  let holding = false
  let head: unknown[] | undefined
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (!holding) return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args)
    head = args
    return res
  } as typeof res.writeHead
  res.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (!holding) return (write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), typeof encoding === 'string' ? encoding as BufferEncoding : 'utf8'))
    return true
  } as typeof res.write
  res.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown) {
    if (!holding) return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, cb)
    holding = false
    const failed = hooks.beforeSend()
    if (failed !== undefined) { hooks.fail(failed); return res }
    if (head !== undefined) (writeHead as (...a: unknown[]) => ServerResponse).apply(res, head)
    // Nothing was held back (no save ran, or it ran before any write): the end goes out as given.
    if (chunks.length === 0) return (end as (...a: unknown[]) => ServerResponse).call(res, chunk, encoding, cb)
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), typeof encoding === 'string' ? encoding as BufferEncoding : 'utf8'))
    }
    return (end as (...a: unknown[]) => ServerResponse).call(res, Buffer.concat(chunks))
  } as typeof res.end
  return { start: () => { holding = !res.headersSent }, end }
}

// Removes the Set-Cookie headers of the session cookie set so far.
function dropCookie (res: Response, ours: string): void {
  const headers = res.getHeader('set-cookie')
  const list = Array.isArray(headers) ? headers : typeof headers === 'string' ? [headers] : []
  const others = list.filter((h) => !h.startsWith(ours))
  if (others.length === list.length) return
  res.removeHeader('set-cookie')
  if (others.length > 0) res.setHeader('set-cookie', others)
}

function expireAtDeadline (res: Response, ours: string, deadline: Date): void {
  const headers = res.getHeader('set-cookie')
  if (!Array.isArray(headers) && typeof headers !== 'string') return
  const list = [headers].flat().map((h) => h.startsWith(ours) ? h.replace(/; Expires=[^;]*/i, `; Expires=${deadline.toUTCString()}`) : h)
  res.setHeader('set-cookie', list)
}

function clearCookie (name: string, path: string, domain: string | undefined): string {
  return `${name}=; Path=${path}${domain === undefined ? '' : `; Domain=${domain}`}; Expires=Thu, 01 Jan 1970 00:00:00 GMT`
}
