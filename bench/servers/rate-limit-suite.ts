// This suite's rate limiter on every route, with a limit no run reaches (every request is
// checked and counted; none is refused). AUTO_PIPELINING=1 turns on ioredis enableAutoPipelining;
// KEY_HEADER=<name> counts each client by that request header instead of by IP.
import Fastify from 'fastify'
import { announce } from '../harness.js'
import redisPlugin from '../../plugins/redis.js'
import rateLimit from '../../plugins/rate-limit.js'

const app = Fastify({ logger: false })
await app.register(redisPlugin, { url: process.env.REDIS_URL, options: { enableAutoPipelining: process.env.AUTO_PIPELINING === '1' }, prefix: 'bench' })
const header = process.env.KEY_HEADER
await app.register(rateLimit, { rate: '1000000000/hour', key: header === undefined ? undefined : (request) => request.headers[header] as string })
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
