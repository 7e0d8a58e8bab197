// @fastify/rate-limit with its Redis store on an ioredis client, the same limit as the suite's
// server. Imported by a computed name: its type augmentations (fastify.rateLimit,
// config.rateLimit) clash with this suite's, and only one of them may be in one program.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { announce } from '../harness.js'

const name = '@fastify/rate-limit'
const { default: peerRateLimit } = await import(name) as { default: (...args: never[]) => unknown }
const redis = new Redis(process.env.REDIS_URL as string, { enableAutoPipelining: process.env.AUTO_PIPELINING === '1', connectTimeout: 500, maxRetriesPerRequest: 1 })
const app = Fastify({ logger: false })
const header = process.env.KEY_HEADER
await app.register(peerRateLimit as never, {
  max: 1_000_000_000,
  timeWindow: '1 hour',
  redis,
  nameSpace: 'bench-peer:',
  ...(header === undefined ? {} : { keyGenerator: (request: { headers: Record<string, unknown> }) => request.headers[header] })
})
app.get('/', async () => ({ hello: 'world' }))
app.addHook('onClose', async () => { await redis.quit() })
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
