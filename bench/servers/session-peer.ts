// The peer: @fastify/session with connect-redis on a node-redis (redis@5) client, defaults
// matched to ours (1 day max age, rolling, saveUninitialized off).
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { RedisStore } from 'connect-redis'
import Fastify from 'fastify'
import { createClient } from 'redis'
import { announce } from '../harness.js'
import { sessionRoutes } from './session-routes.js'

const client = createClient({ url: process.env.REDIS_URL as string })
await client.connect()
const app = Fastify({ logger: false })
await app.register(fastifyCookie)
await app.register(fastifySession, {
  secret: 'bench-secret-bench-secret-bench-secret',
  store: new RedisStore({ client, prefix: 'benchpeer:' }) as never,
  cookie: { secure: false, maxAge: 86_400_000, httpOnly: true, sameSite: 'lax' },
  saveUninitialized: false
})
sessionRoutes(app)
app.addHook('onClose', async () => { await client.quit() })
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
