// The example API: a small property-rental service (the seeds' StayAfrica), as a plugin
// another server can mount under a prefix. It expects the suite registered on the host
// (see server.ts): fastify.cache, response caching, sessions, rate limits and OTP.
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Database, Booking, Listing, User } from './db.js'

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

const exampleApp: FastifyPluginAsync<ExampleAppOptions> = async (app, { db, sendMail }) => {
  const mail = sendMail ?? defaultMailer(app)
  const viewCounters = new Map<number, ReturnType<FastifyInstance['cache']['counter']>>()

  function userOf (request: FastifyRequest): User | undefined {
    const id = positiveInt(request.session.userId)
    return id === undefined ? undefined : db.one<User>('select id, email, name from users where id = ?', [id])
  }

  function requireUser (request: FastifyRequest, reply: FastifyReply): User | undefined {
    const user = userOf(request)
    if (user === undefined) reply.code(401).send({ error: 'log in first' })
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

  app.get('/', async () => ({
    name: 'fastify-redis-suite example: a property-rental API',
    routes: ['GET /listings', 'GET /listings/:id', 'POST /listings', 'PATCH /listings/:id', 'POST /auth/code', 'POST /auth/verify',
      'POST /auth/logout', 'POST /auth/logout-everywhere', 'GET /me/dashboard', 'POST /bookings', 'GET /stats']
  }))

  app.get('/stats', { config: { rateLimit: false } }, async () => ({ dbQueries: db.queries, cache: app.cache.stats() }))

  app.get('/listings', { config: { cache: { ttl: '1m', staleWhileRevalidate: '5m', tags: ['listings'] } } }, async (request) => {
    const { city } = request.query as { city?: string }
    return city === undefined
      ? db.all<Listing>('select id, title, city, price from listings order by id')
      : db.all<Listing>('select id, title, city, price from listings where city = ? order by id', [city])
  })

  app.get('/listings/:id', {
    config: { cache: { ttl: '5m', tags: (request: FastifyRequest) => ['listings', `listing:${(request.params as { id: string }).id}`] } },
    onResponse: async (request, reply) => {
      const id = positiveInt((request.params as { id: string }).id)
      if (id !== undefined && reply.statusCode === 200) countView(id)
    }
  }, async (request, reply) => {
    const id = positiveInt((request.params as { id: string }).id)
    const listing = id === undefined ? undefined : db.one<Listing>('select id, title, city, price, owner_id as ownerId, views from listings where id = ?', [id])
    return listing ?? reply.code(404).send({ error: 'no such listing' })
  })

  app.post('/listings', { config: { invalidates: { tags: ['listings'] } } }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const { title, city, price } = (request.body ?? {}) as Partial<Listing>
    if (typeof title !== 'string' || title.length === 0 || title.length > 200 || typeof city !== 'string' || positiveInt(price) === undefined) {
      return reply.code(400).send({ error: 'expected { title, city, price }' })
    }
    const id = db.run('insert into listings (title, city, price, owner_id) values (?, ?, ?, ?)', [title, city, price as number, user.id])
    return reply.code(201).send({ id, title, city, price })
  })

  app.patch('/listings/:id', {
    config: { invalidates: { tags: (request: FastifyRequest) => ['listings', `listing:${(request.params as { id: string }).id}`] } }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const id = positiveInt((request.params as { id: string }).id)
    const listing = id === undefined ? undefined : db.one<Listing>('select id, owner_id as ownerId from listings where id = ?', [id])
    if (listing === undefined) return reply.code(404).send({ error: 'no such listing' })
    if (listing.ownerId !== user.id) return reply.code(403).send({ error: 'not your listing' })
    const price = positiveInt((request.body as { price?: unknown } | undefined)?.price)
    if (price === undefined) return reply.code(400).send({ error: 'expected { price }' })
    db.run('update listings set price = ? where id = ?', [price, listing.id])
    return { id: listing.id, price }
  })

  // Login by email code. The answer is the same for known and unknown emails.
  app.post('/auth/code', { config: { rateLimit: { rate: '5/15m' } } }, async (request, reply) => {
    const email = String((request.body as { email?: unknown } | undefined)?.email ?? '').trim().toLowerCase()
    if (!EMAIL.test(email)) return reply.code(400).send({ error: 'expected { email }' })
    const { code } = await app.otp.issue({ purpose: 'login', subject: email })
    await mail(email, 'Your login code', code)
    return { sent: true }
  })

  app.post('/auth/verify', { config: { rateLimit: { rate: '20/15m' } } }, async (request, reply) => {
    const body = (request.body ?? {}) as { email?: unknown, code?: unknown }
    const email = String(body.email ?? '').trim().toLowerCase()
    const result = await app.otp.verify({ purpose: 'login', subject: email, code: String(body.code ?? '') })
    if (result.status === 'locked') return reply.code(429).header('retry-after', String(result.retryAfter)).send({ error: 'too many attempts' })
    if (result.status !== 'ok') return reply.code(400).send({ error: 'wrong or expired code', ...(result.status === 'invalid' ? { attemptsLeft: result.attemptsLeft } : {}) })
    let user = db.one<User>('select id, email, name from users where email = ?', [email])
    if (user === undefined) {
      const id = db.run('insert into users (email, name) values (?, ?)', [email, email.split('@')[0] as string])
      user = { id, email, name: email.split('@')[0] as string }
    }
    await request.session.regenerate() // a new id at login: no session fixation
    request.session.userId = String(user.id)
    return { user }
  })

  app.post('/auth/logout', async (request) => {
    await request.session.destroy()
    return { ok: true }
  })

  app.post('/auth/logout-everywhere', async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const ended = await app.sessions.revokeUser(String(user.id))
    return { ended }
  })

  app.get('/me/dashboard', {
    config: { cache: { perUser: true, ttl: '30s', tags: (request: FastifyRequest) => [`user:${request.session.userId ?? ''}`] } }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const bookings = db.all<Booking>('select b.id, b.listing_id as listingId, b.nights, l.title from bookings b join listings l on l.id = b.listing_id where b.user_id = ? order by b.id', [user.id])
    const listings = db.all<Listing>('select id, title, views from listings where owner_id = ? order by id', [user.id])
    return { user, bookings, listings }
  })

  app.post('/bookings', {
    config: {
      rateLimit: { userRate: '5/hour', anonymousRate: '5/hour' },
      invalidates: { tags: (request: FastifyRequest) => [`user:${request.session.userId ?? ''}`] }
    }
  }, async (request, reply) => {
    const user = requireUser(request, reply)
    if (user === undefined) return reply
    const body = (request.body ?? {}) as { listingId?: unknown, nights?: unknown }
    const listingId = positiveInt(body.listingId)
    const nights = positiveInt(body.nights)
    if (listingId === undefined || nights === undefined || nights > 60) return reply.code(400).send({ error: 'expected { listingId, nights (1-60) }' })
    if (db.one('select id from listings where id = ?', [listingId]) === undefined) return reply.code(404).send({ error: 'no such listing' })
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
