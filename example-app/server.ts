// Runs the example alone: `npm run example`. Uses REDIS_URL when set; otherwise starts a
// throwaway redis-server; when neither can be had, says how to get one.
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import { otpLoggerOptions, suite } from '../plugins/index.js'
import type { Rate } from '../plugins/index.js'
import exampleApp from './app.js'
import { Database } from './db.js'
import { redisServerAvailable, startRedisServer } from '../test/fixtures/redis-server.js'

async function redisUrl (): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL
  if (!(await redisServerAvailable())) {
    console.error('The example needs Redis: install redis-server (apt-get install redis-server, brew install redis) or set REDIS_URL=redis://host:6379.')
    process.exit(1)
  }
  const server = await startRedisServer()
  console.error(`started a throwaway redis-server at ${server.url} (it stops with this process)`)
  return server.url
}

function secret (name: string): string {
  const value = process.env[name]
  if (value !== undefined) return value
  console.error(`${name} is not set: using a random one, so sessions and codes do not survive a restart`)
  return randomBytes(32).toString('base64url')
}

const db = await Database.open()
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info', ...otpLoggerOptions() }, trustProxy: process.env.TRUST_PROXY === '1' })
await app.register(suite, {
  redis: { url: await redisUrl(), healthRoute: true },
  responseCache: { lock: true },
  session: { secret: secret('SESSION_SECRET'), cookie: { secure: process.env.NODE_ENV === 'production' } },
  // Anonymous API traffic is limited per IP, logged-in users per user (DRF's anon/user scopes).
  rateLimit: { anonymousRate: (process.env.ANON_RATE ?? '300/minute') as Rate, userRate: '1000/minute' },
  otp: { secret: secret('OTP_SECRET') }
})
await app.register(exampleApp, { prefix: '/api', db })
app.get('/', async (_request, reply) => reply.redirect('/api'))
app.addHook('onClose', async () => { db.close() })

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
