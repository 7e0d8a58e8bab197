// The example API: a small property-rental service (the seeds' StayAfrica), as a plugin
// another server can mount under a prefix. It expects the suite registered on the host
// (see server.ts): fastify.cache, response caching, sessions, rate limits and OTP.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Database, Booking, Listing, User } from './db.js'
import { schemas } from './schemas.js'

export interface ExampleAppOptions {
  db: Database
  /** Where login codes go; the default writes them to the log (redacted in production). */
  sendMail?: (to: string, subject: string, code: string) => Promise<void>
}

declare module 'fastify' {
  interface Session { userId?: string }
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,190}$/

function positiveInt (value: unknown): number | undefined {
  const n = Number(value)
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/** A 4xx in the shape of Fastify's own errors, with a stable code that clients can test. */
function fail (reply: FastifyReply, statusCode: number, code: string, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.code(statusCode).send({ statusCode, code, error: STATUS_CODES[statusCode], message, ...extra })
}

interface IdParams { id: string }

const exampleApp: FastifyPluginAsync<ExampleAppOptions> = async (app, { db, sendMail }) => {
  const mail = sendMail ?? defaultMailer(app)
  const viewCounters = new Map<number, ReturnType<FastifyInstance['cache']['counter']>>()

  // Bodies are JSON or nothing: text/plain (which Fastify parses by default) is a 415 here, like
  // forms and multipart, which have no parser.
  app.removeContentTypeParser('text/plain')
  app.setNotFoundHandler((request, reply) => fail(reply, 404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] as string}`))
  // Every error reply carries a code: Fastify's own errors have one (FST_ERR_VALIDATION,
  // FST_ERR_CTP_INVALID_MEDIA_TYPE, ...), and the few that do not get one from their status.
  app.setErrorHandler<FastifyError>((error, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
    if (typeof error.code !== 'string') error.code = status >= 500 ? 'INTERNAL_ERROR' : 'BAD_REQUEST'
    return reply.send(error) // on to Fastify's default handler, which sends it as { statusCode, code, error, message }
  })

  function userOf (request: FastifyRequest): User | undefined {
    const id = positiveInt(request.session.userId)
    return id === undefined ? undefined : db.one<User>('select id, email, name from users where id = ?', [id])
  }

  function requireUser (request: FastifyRequest, reply: FastifyReply): User | undefined {
    const user = userOf(request)
    if (user === undefined) fail(reply, 401, 'LOGIN_REQUIRED', 'log in first')
    return user
  }

  // A view counter per listing, written to the database every 100 views (or every 10 s)
  // by whichever instance reaches the threshold.
  function countView (id: number): void {
    let counter = viewCounters.get(id)
    if (counter === undefined) {
      counter = app.cache.counter(`views:${id}`, {
        flushEvery: 100,
        flushInterval: '10s',
        onFlush: async (total) => { db.run('update listings set views = views + ? where id = ?', [total, id]) }
      })
      viewCounters.set(id, counter)
    }
    counter.incr().catch((err: unknown) => app.log.warn({ err }, 'view counter unavailable'))
  }

  app.get('/', { schema: schemas.index }, async () => ({
    name: 'fastify-redis-suite example: a property-rental API',
    routes: ['GET /listings', 'GET /listings/:id', 'POST /listings', 'PATCH /listings/:id', 'POST /auth/code', 'POST /auth/verify',
      'POST /auth/logout', 'POST /auth/logout-everywhere', 'GET /me/dashboard', 'POST /bookings', 'GET /stats']
  }))

  app.get('/stats', { schema: schemas.stats, config: { rateLimit: false } }, async () => ({ dbQueries: db.queries, cache: app.cache.stats() }))

  app.get<{ Querystring: { city?: string } }>('/listings', {
    schema: schemas.listings,
    config: { cache: { ttl: '1m', staleWhileRevalidate: '5m', tags: ['listings'] } }
  }, async (request) => {
    const { city } = request.query
    return city === undefined
      ? db.all<Listing>('select id, title, city, price from listings order by id')
      : db.all<Listing>('select id, title, city, price from listings where city = ? order by id', [city])
  })

  app.get<{ Params: IdParams }>('/listings/:id', {
    schema: schemas.listing,
    config: { cache: { ttl: '5m', tags: (request: FastifyRequest) => ['listings', `listing:${(request.params as IdParams).id}`] } },
    onResponse: async (request, reply) => {
      const id = positiveInt(request.params.id)
      if (id !== undefined && reply.statusCode === 200) countView(id)
    }
  }, async (request, reply) => {
    const id = positiveInt(request.params.id)
    const listing = id === undefined ? undefined : db.one<Listing>('select id, title, city, price, owner_id as ownerId, views from listings where id = ?', [id])
    return listing ?? fail(reply, 404, 'NO_SUCH_LISTING', 'no such listing')
  })

  app.post<{ Body: Pick<Listing, 'title' | 'city' | 'price'> }>('/listings', {
    schema: schemas.createListing,
    config: { invalidates: { tags: ['listings'] } }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const { title, city, price } = request.body
    const id = db.run('insert into listings (title, city, price, owner_id) values (?, ?, ?, ?)', [title, city, price, user.id])
    return reply.code(201).send({ id, title, city, price })
  })

  app.patch<{ Params: IdParams, Body: { price: number } }>('/listings/:id', {
    schema: schemas.updateListing,
    config: { invalidates: { tags: (request: FastifyRequest) => ['listings', `listing:${(request.params as IdParams).id}`] } }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const id = positiveInt(request.params.id)
    const listing = id === undefined ? undefined : db.one<Listing>('select id, owner_id as ownerId from listings where id = ?', [id])
    if (listing === undefined) return fail(reply, 404, 'NO_SUCH_LISTING', 'no such listing')
    if (listing.ownerId !== user.id) return fail(reply, 403, 'NOT_YOUR_LISTING', 'not your listing')
    const { price } = request.body
    db.run('update listings set price = ? where id = ?', [price, listing.id])
    return { id: listing.id, price }
  })

  // Login by email code. The answer is the same for known and unknown emails.
  app.post<{ Body: { email: string } }>('/auth/code', { schema: schemas.sendCode, config: { rateLimit: { rate: '5/15m' } } }, async (request, reply) => {
    const email = request.body.email.trim().toLowerCase()
    if (!EMAIL.test(email)) return fail(reply, 400, 'INVALID_EMAIL', 'expected { email } with an email address')
    const { code } = await app.otp.issue({ purpose: 'login', subject: email })
    await mail(email, 'Your login code', code)
    return { sent: true }
  })

  app.post<{ Body: { email: string, code: string } }>('/auth/verify', { schema: schemas.verifyCode, config: { rateLimit: { rate: '20/15m' } } }, async (request, reply) => {
    const email = request.body.email.trim().toLowerCase()
    if (!EMAIL.test(email)) return fail(reply, 400, 'INVALID_EMAIL', 'expected { email, code } with an email address')
    const result = await app.otp.verify({ purpose: 'login', subject: email, code: request.body.code })
    if (result.status === 'locked') return fail(reply.header('retry-after', String(result.retryAfter)), 429, 'TOO_MANY_ATTEMPTS', 'too many attempts')
    if (result.status !== 'ok') return fail(reply, 400, 'WRONG_CODE', 'wrong or expired code', result.status === 'invalid' ? { attemptsLeft: result.attemptsLeft } : {})
    let user = db.one<User>('select id, email, name from users where email = ?', [email])
    if (user === undefined) {
      const id = db.run('insert into users (email, name) values (?, ?)', [email, email.split('@')[0] as string])
      user = { id, email, name: email.split('@')[0] as string }
    }
    await request.session.regenerate() // a new id at login: no session fixation
    request.session.userId = String(user.id)
    return { user }
  })

  app.post('/auth/logout', { schema: schemas.logout }, async (request) => {
    await request.session.destroy()
    return { ok: true }
  })

  app.post('/auth/logout-everywhere', { schema: schemas.logoutEverywhere }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const ended = await app.sessions.revokeUser(String(user.id))
    return { ended }
  })

  app.get('/me/dashboard', {
    schema: schemas.dashboard,
    config: { cache: { perUser: true, ttl: '30s', tags: (request: FastifyRequest) => [`user:${request.session.userId ?? ''}`] } }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const bookings = db.all<Booking>('select b.id, b.listing_id as listingId, b.nights, l.title from bookings b join listings l on l.id = b.listing_id where b.user_id = ? order by b.id', [user.id])
    const listings = db.all<Listing>('select id, title, views from listings where owner_id = ? order by id', [user.id])
    return { user, bookings, listings }
  })

  app.post<{ Body: { listingId: number, nights: number } }>('/bookings', {
    schema: schemas.book,
    config: {
      rateLimit: { userRate: '5/hour', anonymousRate: '5/hour' },
      invalidates: { tags: (request: FastifyRequest) => [`user:${request.session.userId ?? ''}`] }
    }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const { listingId, nights } = request.body
    if (db.one('select id from listings where id = ?', [listingId]) === undefined) return fail(reply, 404, 'NO_SUCH_LISTING', 'no such listing')
    const id = db.run('insert into bookings (listing_id, user_id, nights) values (?, ?, ?)', [listingId, user.id, nights])
    return reply.code(201).send({ id, listingId, nights })
  })
}

function defaultMailer (app: FastifyInstance): (to: string, subject: string, code: string) => Promise<void> {
  const development = process.env.NODE_ENV !== 'production'
  return async (to, subject, code) => {
    // Development shows the code so that the walkthrough works; everywhere else it is redacted.
    app.log.info({ mail: { to, subject, body: development ? `Your code is ${code}` : '[redacted]' } }, 'email sent')
  }
}

export default exampleApp
