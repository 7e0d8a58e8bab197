// The Express example: the suite's Express door on one Redis. `createExpressApp(suite)` builds
// the app (the end-to-end test walks it); run alone with `node .build/example-app/express.js`
// after `npm run example` has compiled it (REDIS_URL, SESSION_SECRET and OTP_SECRET are read).
//   GET  /products      cached 30 s, tagged `products`; 100/hour per client
//   POST /products      invalidates `products`
//   POST /login         5 wrong passwords per 15 min; a new session (regenerate) for the user
//   GET  /me            the session's user; POST /logout ends it
//   POST /otp, POST /otp/verify   a one-time code by email (printed here instead of sent)
import { randomBytes } from 'node:crypto'
import express from 'express'
import type { Express, NextFunction, Request, Response } from 'express'
import { redisSuite } from '../express/index.js'
import type { RedisSuite } from '../express/index.js'

declare module 'express-session' {
  interface SessionData { userId?: string }
}

const products = [{ id: 1, name: 'Tea' }]

export function createExpressApp (suite: RedisSuite, sent: (email: string, code: string) => void = () => {}): Express {
  const app = express()
  app.use(express.json())
  app.use(suite.sessions.middleware)
  app.get('/products', suite.rateLimit(), suite.responseCache({ ttl: '30s', tags: ['products'] }), (_req, res) => { res.json(products) })
  app.post('/products', suite.invalidates({ tags: ['products'] }), (req, res) => {
    products.push({ id: products.length + 1, name: String(req.body?.name ?? 'unnamed') })
    res.status(201).json(products.at(-1))
  })
  app.post('/login', suite.rateLimit({ rate: '5/15m', count: 'failures' }), (req, res, next) => {
    if (req.body?.password !== 'secret') {
      res.status(401).json({ error: 'wrong password' })
      return
    }
    // A new session id at login, so that an id known before it is worth nothing after.
    req.session.regenerate((err) => {
      if (err !== undefined && err !== null) return next(err)
      req.session.userId = String(req.body.user)
      res.json({ ok: true })
    })
  })
  app.get('/me', (req, res) => { res.json({ user: req.session.userId ?? null }) })
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => { if (err !== undefined && err !== null) return next(err); res.json({ ok: true }) })
  })
  app.post('/otp', (req, res, next) => {
    suite.otp.issue({ purpose: 'login', subject: String(req.body?.email) }).then(({ code }) => {
      sent(String(req.body?.email), code)
      res.status(202).json({ sent: true })
    }, next)
  })
  app.post('/otp/verify', (req, res, next) => {
    suite.otp.verify({ purpose: 'login', subject: String(req.body?.email), code: String(req.body?.code) }).then((r) => {
      res.status(r.status === 'ok' ? 200 : 401).json(r)
    }, next)
  })
  app.get('/health', suite.healthHandler)
  // Express conventions: the suite's errors carry `statusCode` (400 for a client's bad input,
  // 429, 503 when Redis fails for sessions and codes) and a stable `code`.
  app.use((err: Error & { statusCode?: number, code?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const status = err.statusCode ?? 500
    res.status(status).json({ statusCode: status, code: err.code, message: status < 500 || status === 503 ? err.message : 'Internal Server Error' })
  })
  return app
}

export async function openSuite (redis: NonNullable<Parameters<typeof redisSuite>[0]>['redis']): Promise<RedisSuite> {
  return await redisSuite({
    redis,
    responseCache: true,
    rateLimit: { rate: '100/hour' },
    session: { secret: process.env.SESSION_SECRET ?? randomBytes(32).toString('base64url') },
    otp: { secret: process.env.OTP_SECRET ?? randomBytes(32).toString('base64url') }
  })
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  const suite = await openSuite({ url: process.env.REDIS_URL })
  const server = createExpressApp(suite, (email, code) => console.log(`code for ${email}: ${code}`)).listen(Number(process.env.PORT ?? 3000))
  process.on('SIGTERM', () => { server.close(() => { suite.close().then(() => process.exit(0), () => process.exit(1)) }) })
}
