// The same configuration on both doors answers the same: one scenario list runs against a
// Fastify app (the `suite` plugin) and an Express app (`redisSuite()`), both on real HTTP on
// 127.0.0.1, and statuses, the headers that carry behaviour, and bodies are compared.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import suitePlugin from '../plugins/suite.js'
import type { SuiteOptions } from '../plugins/suite.js'
import { buildExpress, cookieOf, sessionRoutes } from './fixtures/express-app.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'
import './fixtures/session.js'

const SECRET = 'a-secret-of-at-least-thirty-two-characters'
const redis = await testRedis()

const features = {
  responseCache: { ttl: '1m' },
  rateLimit: { scopes: { tight: '3/hour' } },
  session: { secret: SECRET }
} satisfies Omit<SuiteOptions, 'redis'>

interface Door { name: string, base: string }

async function fastifyDoor (): Promise<Door> {
  let n = 0
  const app: FastifyInstance = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(suitePlugin, { redis: { ...redis.connection, prefix: freshPrefix() }, ...features })
  app.get('/items', { config: { cache: { tags: ['items'] } } }, async () => ({ n: ++n }))
  app.get('/swr', { config: { cache: { ttl: 300, staleWhileRevalidate: '1m' } } }, async () => ({ n: ++n }))
  app.get('/cookie', { config: { cache: true } }, async (_request, reply) => reply.header('set-cookie', 'a=b; Path=/').send({ n: ++n }))
  app.post('/items', { config: { invalidates: { tags: ['items'] } } }, async (_request, reply) => reply.code(201).send({ ok: true }))
  app.get('/limited', { config: { rateLimit: { scope: 'tight' } } }, async () => ({ ok: true }))
  app.post('/login', async (request) => {
    await request.session.regenerate()
    request.session.userId = 'u1'
    return { ok: true }
  })
  app.get('/me', async (request) => ({ user: request.session.userId ?? null }))
  app.post('/logout', async (request) => { await request.session.destroy(); return { ok: true } })
  return { name: 'fastify', base: await app.listen({ host: '127.0.0.1', port: 0 }) }
}

async function expressDoor (): Promise<Door> {
  let n = 0
  const { base } = await buildExpress(t, features, (app, suite) => {
    app.use(suite.sessions.middleware)
    app.get('/items', suite.responseCache({ tags: ['items'] }), (_req, res) => { res.json({ n: ++n }) })
    app.get('/swr', suite.responseCache({ ttl: 300, staleWhileRevalidate: '1m' }), (_req, res) => { res.json({ n: ++n }) })
    app.get('/cookie', suite.responseCache(), (_req, res) => { res.setHeader('set-cookie', 'a=b; Path=/'); res.json({ n: ++n }) })
    app.post('/items', suite.invalidates({ tags: ['items'] }), (_req, res) => { res.status(201).json({ ok: true }) })
    app.get('/limited', suite.rateLimit({ scope: 'tight' }), (_req, res) => { res.json({ ok: true }) })
    sessionRoutes(app)
  })
  return { name: 'express', base }
}

const HEADERS = ['x-cache', 'cache-control', 'vary', 'retry-after', 'ratelimit', 'ratelimit-policy']

/** What a response says that both doors must agree on. */
async function observe (res: Response): Promise<object> {
  const text = await res.text()
  const headers: Record<string, string | null> = {}
  for (const h of HEADERS) headers[h] = res.headers.get(h)
  // Express adds `; charset=utf-8` to every text body; the media type is what is compared.
  headers['content-type'] = res.headers.get('content-type')?.split(';')[0] ?? null
  // Express tags every body with a weak ETag of its own (its 'etag' setting); ours are compared
  // where the cache answers.
  const cached = ['HIT', 'MISS', 'STALE'].includes(res.headers.get('x-cache') ?? '')
  headers.etag = !cached ? 'n/a' : res.headers.has('etag') ? 'present' : null
  return { status: res.status, headers, body: text === '' ? '' : JSON.parse(text) }
}

type Step = (door: Door, state: Record<string, string>) => Promise<object>
const get = (path: string, init?: RequestInit): Step => async (door) => await observe(await fetch(door.base + path, init))

const until = async (fn: () => Promise<boolean>): Promise<void> => {
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && !(await fn())) await new Promise((resolve) => setTimeout(resolve, 20))
}

const scenarios: Record<string, Step[]> = {
  'response cache: MISS, HIT, 304 with the ETag, invalidation by a mutation, MISS again': [
    get('/items'),
    get('/items'),
    async (door) => {
      const etag = (await fetch(door.base + '/items')).headers.get('etag') as string
      return await observe(await fetch(door.base + '/items', { headers: { 'if-none-match': etag } }))
    },
    get('/items', { method: 'POST' }),
    get('/items'),
    get('/items')
  ],
  'response cache: a response with Set-Cookie is never stored': [get('/cookie'), get('/cookie')],
  'response cache: a request with a session cookie bypasses a shared entry': [get('/items', { headers: { cookie: 'sessionId=x' } })],
  'response cache: stale-while-revalidate serves STALE while one refresh runs, then the fresh entry': [
    get('/swr'),
    async (door) => { await new Promise((resolve) => setTimeout(resolve, 400)); return await observe(await fetch(door.base + '/swr')) },
    async (door) => {
      let last: Response | undefined
      await until(async () => { last = await fetch(door.base + '/swr'); return last.headers.get('x-cache') === 'HIT' })
      return await observe(last as Response)
    }
  ],
  'rate limit: headers, then 429 with the problem body and Retry-After': [get('/limited'), get('/limited'), get('/limited'), get('/limited')],
  'sessions: login (regenerate) sets a cookie, the session reads back, logout clears it and the old cookie is dead': [
    async (door, state) => {
      const res = await fetch(door.base + '/login', { method: 'POST' })
      state.cookie = cookieOf(res) as string
      return { ...(await observe(res)), cookie: state.cookie !== undefined }
    },
    async (door, state) => await observe(await fetch(door.base + '/me', { headers: { cookie: state.cookie as string } })),
    async (door, state) => {
      const res = await fetch(door.base + '/login', { method: 'POST', headers: { cookie: state.cookie as string } })
      const renewed = cookieOf(res) as string
      const changed = renewed !== state.cookie
      const old = await (await fetch(door.base + '/me', { headers: { cookie: state.cookie as string } })).json()
      state.cookie = renewed
      return { ...(await observe(res)), changed, old }
    },
    async (door, state) => {
      const res = await fetch(door.base + '/logout', { method: 'POST', headers: { cookie: state.cookie as string } })
      const cleared = res.headers.getSetCookie().some((c) => c.startsWith('sessionId=;') && /Expires=Thu, 01 Jan 1970/.test(c))
      return { ...(await observe(res)), cleared }
    },
    async (door, state) => await observe(await fetch(door.base + '/me', { headers: { cookie: state.cookie as string } }))
  ]
}

// What the scenarios must show (checked on both doors, so that agreeing on nothing fails).
const expected: Record<string, Array<[number, string | null]>> = {
  'response cache: MISS, HIT, 304 with the ETag, invalidation by a mutation, MISS again': [[200, 'MISS'], [200, 'HIT'], [304, 'HIT'], [201, null], [200, 'MISS'], [200, 'HIT']],
  'response cache: a response with Set-Cookie is never stored': [[200, 'BYPASS'], [200, 'BYPASS']],
  'response cache: a request with a session cookie bypasses a shared entry': [[200, 'BYPASS']],
  'response cache: stale-while-revalidate serves STALE while one refresh runs, then the fresh entry': [[200, 'MISS'], [200, 'STALE'], [200, 'HIT']],
  'rate limit: headers, then 429 with the problem body and Retry-After': [[200, null], [200, null], [200, null], [429, null]]
}

const doors = await Promise.all([fastifyDoor(), expressDoor()])

for (const [name, steps] of Object.entries(scenarios)) {
  t.test(name, async (t) => {
    const [fastify, express] = await Promise.all(doors.map(async (door) => {
      const state: Record<string, string> = {}
      const out: object[] = []
      for (const step of steps) out.push(await step(door, state))
      return out
    }))
    t.same(express, fastify, 'Express answers as Fastify does')
    t.ok((fastify as Array<{ status: number }>).every((r) => r.status < 500), 'no 5xx')
    const shown = (fastify as Array<{ status: number, headers: Record<string, string | null> }>).map((r) => [r.status, r.headers['x-cache'] ?? null])
    if (expected[name] !== undefined) t.same(shown, expected[name], 'statuses and X-Cache as specified')
    if (name.startsWith('sessions')) {
      t.match(fastify, [{ cookie: true }, { body: { user: 'u1' } }, { changed: true, old: { user: null } }, { cleared: true }, { body: { user: null } }], 'login, regenerate and logout as specified')
    }
    if (name.startsWith('rate limit')) t.match(fastify, [{}, {}, {}, { headers: { 'retry-after': /^\d+$/, 'content-type': 'application/problem+json' }, body: { code: 'FRS_RATE_LIMITED' } }])
  })
}
