// The rate-limit-suite server with the metrics plugin counting every check (and timing every
// Redis call): what metrics cost per request. KEY_HEADER as in rate-limit-suite.
import Fastify from 'fastify'
import { announce } from '../harness.js'
import metrics from '../../plugins/metrics.js'
import redisPlugin from '../../plugins/redis.js'
import rateLimit from '../../plugins/rate-limit.js'

const app = Fastify({ logger: false })
await app.register(redisPlugin, { url: process.env.REDIS_URL, prefix: 'bench' })
await app.register(metrics, { route: true })
const header = process.env.KEY_HEADER
await app.register(rateLimit, { rate: '1000000000/hour', key: header === undefined ? undefined : (request) => request.headers[header] as string })
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
