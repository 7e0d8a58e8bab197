// The Express door on real HTTP: rate limits, the response cache, sessions on express-session,
// the toolkit, OTP, health and close, and its options refused by name.
import t from 'tap'
import { redisSuite } from '../express/index.js'
import { buildExpress, cookieOf, sessionRoutes } from './fixtures/express-app.js'
import { testRedis } from './fixtures/redis.js'

const SECRET = 'a-secret-of-at-least-thirty-two-characters'
const redis = await testRedis()

t.test('unknown options are refused by name, before any connection opens', async (t) => {
  await t.rejects(redisSuite({ redis: redis.connection, tll: 1 } as never), { code: 'FRS_INVALID_OPTION', message: /tll/ })
  await t.rejects(redisSuite({ redis: redis.connection, rateLimit: { rate: '1/s', hook: 'onRequest' } as never }), { code: 'FRS_INVALID_OPTION', message: /rateLimit\.hook/ })
  await t.rejects(redisSuite({ redis: redis.connection, session: { secret: SECRET, logLevel: 'info' } as never }), { message: /session\.logLevel/ })
  await t.rejects(redisSuite({ redis: redis.connection, cache: { ttll: 1 } as never }), { message: /ttll/ })
  await t.rejects(redisSuite({ redis: redis.connection, cache: false, responseCache: true }), { message: /needs the cache/ })
  const { suite } = await buildExpress(t, { rateLimit: { rate: '5/s' } }, () => {})
  t.throws(() => suite.rateLimit({ rat: '1/s' } as never), { code: 'FRS_INVALID_OPTION', message: /rat/ }, 'a route config is checked when the middleware is made')
  t.throws(() => suite.responseCache(), { message: /responseCache/ }, 'a feature that is off says how to turn it on')
  t.throws(() => suite.otp, { message: /otp/ })
})

t.test('rate limit: exact quota under 200 concurrent requests, draft headers, 429 problem body, Retry-After', async (t) => {
  const { base } = await buildExpress(t, { rateLimit: { anonymousRate: '50/hour' } }, (app, suite) => {
    app.get('/a', suite.rateLimit(), (_req, res) => { res.json({ ok: true }) })
    app.get('/own', suite.rateLimit({ rate: '3/hour' }), (_req, res) => { res.json({ ok: true }) })
  })
  const statuses = await Promise.all(Array.from({ length: 200 }, async () => (await fetch(base + '/a')).status))
  t.equal(statuses.filter((s) => s === 200).length, 50)
  t.equal(statuses.filter((s) => s === 429).length, 150)
  const res = await fetch(base + '/a')
  t.equal(res.status, 429)
  t.equal(res.headers.get('content-type'), 'application/problem+json')
  t.match(res.headers.get('retry-after'), /^\d+$/)
  t.match(res.headers.get('ratelimit-policy'), '"anon";q=50;w=3600')
  t.match(await res.json(), { status: 429, code: 'FRS_RATE_LIMITED', 'violated-policies': ['anon'] })
  const own = await Promise.all(Array.from({ length: 5 }, async () => (await fetch(base + '/own')).status))
  t.same(own.sort(), [200, 200, 200, 429, 429], 'a route\'s own rate is its own budget')
})

t.test('rate limit fails open by default and closed with 503 when asked', async (t) => {
  const { base, suite } = await buildExpress(t, { rateLimit: { rate: '5/s', onRedisError: 'closed' }, redis: { commandTimeout: 200 } }, (app, suite) => {
    app.get('/a', suite.rateLimit(), (_req, res) => { res.json({ ok: true }) })
  })
  t.equal((await fetch(base + '/a')).status, 200)
  suite.redis.disconnect()
  const res = await fetch(base + '/a')
  t.equal(res.status, 503)
  t.match(await res.json(), { code: 'FRS_RATE_LIMIT_UNAVAILABLE' })
})

t.test('response cache: MISS then HIT, ETag and 304, Set-Cookie never stored, invalidates on a mutation', async (t) => {
  let runs = 0
  const { base } = await buildExpress(t, { responseCache: { ttl: '1m' } }, (app, suite) => {
    app.get('/items', suite.responseCache({ tags: ['items'] }), (_req, res) => { runs++; res.json({ runs }) })
    app.get('/cookie', suite.responseCache(), (_req, res) => { runs++; res.cookie('a', 'b').json({ runs }) })
    app.post('/items', suite.invalidates({ tags: ['items'] }), (_req, res) => { res.status(201).json({ ok: true }) })
  })
  const first = await fetch(base + '/items')
  t.equal(first.headers.get('x-cache'), 'MISS')
  t.same(await first.json(), { runs: 1 })
  const hits = await Promise.all(Array.from({ length: 20 }, () => fetch(base + '/items')))
  t.ok(hits.every((r) => r.headers.get('x-cache') === 'HIT'))
  t.same(await hits[0]?.json(), { runs: 1 })
  const etag = hits[0]?.headers.get('etag') as string
  const notModified = await fetch(base + '/items', { headers: { 'if-none-match': etag } })
  t.equal(notModified.status, 304)
  t.equal((await fetch(base + '/items', { method: 'POST' })).status, 201)
  const after = await fetch(base + '/items')
  t.equal(after.headers.get('x-cache'), 'MISS', 'the mutation invalidated the tag before it answered')
  t.same(await after.json(), { runs: 2 })
  const c1 = await fetch(base + '/cookie')
  const c2 = await fetch(base + '/cookie')
  t.equal(c1.headers.get('x-cache'), 'BYPASS')
  t.equal(c2.headers.get('x-cache'), 'BYPASS', 'a response with Set-Cookie is never stored')
  t.ok(c2.headers.getSetCookie().length > 0)
})

t.test('response cache: concurrent misses are coalesced into one handler run', async (t) => {
  let runs = 0
  const { base } = await buildExpress(t, { responseCache: true }, (app, suite) => {
    app.get('/slow', suite.responseCache(), (_req, res) => { runs++; setTimeout(() => res.json({ runs }), 50) })
  })
  const all = await Promise.all(Array.from({ length: 100 }, async () => await (await fetch(base + '/slow')).json() as { runs: number }))
  t.equal(runs, 1)
  t.ok(all.every((b) => b.runs === 1))
})

t.test('sessions: login with regenerate, per-user index, logout clears the cookie, revokeUser', async (t) => {
  const { base, suite } = await buildExpress(t, { session: { secret: SECRET } }, (app, suite) => {
    app.use(suite.sessions.middleware)
    sessionRoutes(app)
  })
  const anon = await fetch(base + '/me')
  t.equal(cookieOf(anon), undefined, 'anonymous traffic gets no cookie')
  const login = await fetch(base + '/login', { method: 'POST' })
  const cookie = cookieOf(login) as string
  t.ok(cookie, 'login sets the cookie')
  const expires = /Expires=([^;]+)/.exec(login.headers.getSetCookie()[0] as string)?.[1] as string
  t.ok(Math.abs(new Date(expires).getTime() - Date.now() - 7 * 86_400_000) < 5000, 'the cookie expires at the absolute deadline')
  t.same(await (await fetch(base + '/me', { headers: { cookie } })).json(), { user: 'u1' })
  t.equal((await suite.sessions.listForUser('u1')).length, 1)
  const logout = await fetch(base + '/logout', { method: 'POST', headers: { cookie } })
  t.match(logout.headers.getSetCookie().join('\n'), /sessionId=; .*Expires=Thu, 01 Jan 1970/, 'logout clears the cookie')
  t.same(await (await fetch(base + '/me', { headers: { cookie } })).json(), { user: null })
  const again = cookieOf(await fetch(base + '/login', { method: 'POST' })) as string
  t.equal(await suite.sessions.revokeUser('u1'), 1)
  t.same(await (await fetch(base + '/me', { headers: { cookie: again } })).json(), { user: null }, 'revoked everywhere')
})

t.test('toolkit, OTP, health on the same connections; close() is idempotent', async (t) => {
  const { base, suite } = await buildExpress(t, { otp: { secret: SECRET } }, (app, suite) => {
    app.get('/health', suite.healthHandler)
  })
  await suite.cache.set('k', { a: 1 })
  t.same(await suite.cache.get('k'), { a: 1 })
  const { code } = await suite.otp.issue({ purpose: 'login', subject: 'a@example.com' })
  t.match(await suite.otp.verify({ purpose: 'login', subject: 'a@example.com', code }), { status: 'ok' })
  const health = await fetch(base + '/health')
  t.equal(health.status, 200)
  t.match(await health.json(), { ok: true, cache: {} })
  await suite.close()
  await suite.close()
  t.equal(suite.redis.status, 'end', 'the connections it opened are closed')
})

t.test('response cache on the local tier: hits from memory, an invalidation drops them; refused without the cache\'s tier', async (t) => {
  await t.rejects(redisSuite({ redis: redis.connection, responseCache: { local: true } }), { code: 'FRS_INVALID_OPTION', message: /responseCache\.local.*local tier/s })
  let runs = 0
  const { base, suite } = await buildExpress(t, { cache: { local: { ttl: '1m' } }, responseCache: { local: true } }, (app, suite) => {
    app.get('/items', suite.responseCache({ tags: ['items'] }), (_req, res) => { res.json({ runs: ++runs }) })
    app.post('/items', suite.invalidates({ tags: ['items'] }), (_req, res) => { res.status(201).json({ ok: true }) })
  })
  t.throws(() => suite.responseCache({ locl: true } as never), { code: 'FRS_INVALID_OPTION', message: /locl/ })
  const tier = suite.cache.core.local
  const deadline = Date.now() + 3000
  while (tier?.live !== true && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(tier?.live, true, 'subscribed')
  t.equal((await fetch(base + '/items')).headers.get('x-cache'), 'MISS')
  const before = suite.cache.stats().namespaces.http?.localHits ?? 0
  const hits = await Promise.all(Array.from({ length: 10 }, () => fetch(base + '/items')))
  t.ok(hits.every((r) => r.headers.get('x-cache') === 'HIT'))
  t.ok((suite.cache.stats().namespaces.http?.localHits ?? 0) > before, 'hits came from memory')
  t.equal((await fetch(base + '/items', { method: 'POST' })).status, 201)
  const after = await fetch(base + '/items')
  t.equal(after.headers.get('x-cache'), 'MISS', 'the invalidation dropped the copy at once on this instance')
  t.same(await after.json(), { runs: 2 })
})
