// This suite's session plugin (Redis store on the shared ioredis pool), core plugin defaults;
// AUTO_PIPELINING=1 turns on ioredis enableAutoPipelining; LOCAL_CACHE=<duration> turns on the
// local cache with that ttl.
import Fastify from 'fastify'
import redisPlugin from '../../plugins/redis.js'
import sessionPlugin from '../../plugins/session.js'
import { announce } from '../harness.js'
import { sessionRoutes } from './session-routes.js'

const app = Fastify({ logger: false })
await app.register(redisPlugin, { url: process.env.REDIS_URL as string, prefix: 'benchours', options: { enableAutoPipelining: process.env.AUTO_PIPELINING === '1' }, coalesceWrites: process.env.COALESCE !== '0' })
// Plain http on loopback: the production default (Secure) would keep the cookie from being sent.
await app.register(sessionPlugin, { secret: 'bench-secret-bench-secret-bench-secret', cookie: { secure: false }, userIdField: 'benchUser', localCache: process.env.LOCAL_CACHE ? { ttl: process.env.LOCAL_CACHE as '1s' } : false })
sessionRoutes(app)
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
