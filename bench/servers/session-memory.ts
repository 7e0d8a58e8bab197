// The ceiling for any store: @fastify/session with its in-memory store (no Redis at all), the
// same options and routes as the two Redis servers. What it cannot beat, no store can.
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import { announce } from '../harness.js'
import { sessionRoutes } from './session-routes.js'

const app = Fastify({ logger: false })
await app.register(fastifyCookie)
await app.register(fastifySession, {
  secret: 'bench-secret-bench-secret-bench-secret',
  cookie: { secure: false, maxAge: 86_400_000, httpOnly: true, sameSite: 'lax' },
  saveUninitialized: false
})
sessionRoutes(app)
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
