// The ceiling for any store: @fastify/session with a store that keeps JSON in a Map (what a
// Redis store does, with no Redis and no round trip), the same options and routes as the two
// Redis servers. @fastify/session's own MemoryStore is not used: it hands back the live Session
// object, which makes @fastify/session slower than with a real store.
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import { announce } from '../harness.js'
import { sessionRoutes } from './session-routes.js'

type Callback = (err?: Error | null, value?: unknown) => void

/** A session store on a Map of JSON strings: a Redis store minus Redis. */
class JsonMapStore {
  readonly #data = new Map<string, string>()
  // Callbacks come later, as from a real store (SYNC_STORE=1: at once).
  #later = process.env.SYNC_STORE === '1' ? (fn: () => void) => fn() : (fn: () => void) => { queueMicrotask(fn) }

  get (id: string, cb: Callback): void {
    const json = this.#data.get(id)
    this.#later(() => cb(null, json === undefined ? null : JSON.parse(json)))
  }

  set (id: string, session: unknown, cb: Callback): void {
    this.#data.set(id, JSON.stringify(session))
    this.#later(() => cb())
  }

  destroy (id: string, cb: Callback): void {
    this.#data.delete(id)
    this.#later(() => cb())
  }
}

const app = Fastify({ logger: false })
await app.register(fastifyCookie)
await app.register(fastifySession, {
  secret: 'bench-secret-bench-secret-bench-secret',
  store: new JsonMapStore() as never,
  cookie: { secure: false, maxAge: 86_400_000, httpOnly: true, sameSite: 'lax' },
  saveUninitialized: false
})
sessionRoutes(app)
await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
