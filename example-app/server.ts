// Runs the example alone: `npm run example`. Uses REDIS_URL when set; otherwise starts a
// throwaway redis-server; when neither can be had, runs on the memory engine and says so.
import { randomBytes } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import Fastify from 'fastify'
import { otpLoggerOptions, suite } from '../plugins/index.js'
import type { Rate } from '../plugins/index.js'
import exampleApp from './app.js'
import { Database } from './db.js'
import { redisServerAvailable, startRedisServer } from '../test/fixtures/redis-server.js'

async function redisUrl (): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL
  if (!(await redisServerAvailable())) {
    // No Redis at hand: the in-process memory engine runs everything, in this one process.
    console.error('no REDIS_URL and no redis-server on PATH: running on the in-process memory engine (memory://); data lives in this process only. Install redis-server or set REDIS_URL=redis://host:6379 to use Redis.')
    return 'memory://'
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

// Node answers a request it cannot parse (headers over 16 KiB, a malformed request line) before
// Fastify sees it; answer those in JSON with a code too, like every other error.
function clientError (err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code] = err.code === 'HPE_HEADER_OVERFLOW'
    ? [431, 'HEADERS_TOO_LARGE']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'REQUEST_TIMEOUT'] : [400, 'BAD_REQUEST']
  const body = JSON.stringify({ statusCode: status, code, error: STATUS_CODES[status], message: 'the request could not be read' })
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  } else {
    socket.destroy()
  }
}

const db = await Database.open()
const app = Fastify({
  logger: { level: process.env.LOG_LEVEL ?? 'info', ...otpLoggerOptions() },
  trustProxy: process.env.TRUST_PROXY === '1',
  // Schemas are checked as written: a body's "12" is not an integer and an unknown property is a
  // 400, rather than coerced and silently dropped (Fastify's defaults). Path and query values are
  // always strings, so the example's schemas declare them as strings (schemas.ts).
  ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  // Fastify's defaults, stated: a JSON body with "__proto__" (or constructor.prototype) is a 400.
  onProtoPoisoning: 'error',
  onConstructorPoisoning: 'error',
  clientErrorHandler: clientError
})
await app.register(suite, {
  redis: { url: await redisUrl(), healthRoute: true },
  responseCache: { lock: true },
  session: { secret: secret('SESSION_SECRET'), cookie: { secure: process.env.NODE_ENV === 'production' } },
  // Anonymous API traffic is limited per IP, logged-in users per user (DRF's anon/user scopes).
  rateLimit: { anonymousRate: (process.env.ANON_RATE ?? '300/minute') as Rate, userRate: '1000/minute' },
  otp: { secret: secret('OTP_SECRET') }
})
await app.register(exampleApp, { prefix: '/api', db })
app.get('/', { schema: { querystring: { type: 'object' } } }, async (_request, reply) => reply.redirect('/api'))
app.setNotFoundHandler((request, reply) => reply.code(404).send({
  statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0] as string}`
}))

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) })

// Shut down in the order that loses nothing: app.close() lets requests in flight finish, then the
// cache plugin flushes the view counters into the database, then the Redis connections close;
// the database closes (and is saved) only after all of that. Closing it in an onClose hook
// registered here would run first (Fastify runs onClose hooks last-registered first), and the
// counters' last flush would find it closed.
async function shutdown (): Promise<never> {
  let code = 0
  try {
    await app.close()
  } catch (err) {
    app.log.error({ err }, 'shutdown failed')
    code = 1
  }
  db.close()
  process.exit(code)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { shutdown().catch(() => process.exit(1)) })
