// The rate limiter's budgets and modes over real HTTP (app.listen + fetch): plugin-wide rates
// as one budget per client across routes, named scopes, routes' own budgets, plans (rates as
// functions of the request), counting by outcome, dry run, the block cache, the IPv6 subnet
// and the quota-exceeded problem.
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { parseList } from 'structured-headers'
import rateLimit from '../plugins/rate-limit.js'
import type { RateLimitOptions } from '../plugins/rate-limit.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, scriptCalls } from './fixtures/redis.js'

interface Hit { status: number, headers: Headers, body: Record<string, unknown> }

async function serve (t: Test, opts: RateLimitOptions, routes: (app: FastifyInstance) => void, logs?: string[]) {
  const app = await buildApp(t, {}, async (app) => {
    if (logs !== undefined) app.log = { ...app.log, info: (obj: unknown, msg: string) => { logs.push(`${msg} ${JSON.stringify(obj)}`) } } as never
    app.addHook('onRequest', async (request) => {
      const id = request.headers['x-user']
      if (typeof id === 'string') (request as unknown as { user: { id: string, tier?: string } }).user = { id, tier: request.headers['x-tier'] as string | undefined }
    })
    await app.register(rateLimit, opts)
    routes(app)
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const hit = async (path: string, init: RequestInit = {}): Promise<Hit> => {
    const res = await fetch(base + path, init)
    const text = await res.text()
    return { status: res.status, headers: res.headers, body: text.startsWith('{') ? JSON.parse(text) as Record<string, unknown> : {} }
  }
  return { app, hit }
}

const stat = async (app: FastifyInstance, name: string) => ((await app.redisHealth()).rateLimit as Record<string, number>)[name]
const policyNames = (h: Hit) => parseList(h.headers.get('ratelimit-policy') ?? '').map(([name]) => name)
const remaining = (h: Hit) => Number(parseList(h.headers.get('ratelimit') ?? '')[0]?.[1].get('r'))
const as = (user: string, tier?: string): RequestInit => ({ headers: tier === undefined ? { 'x-user': user } : { 'x-user': user, 'x-tier': tier } })
async function statuses (n: number, send: () => Promise<Hit>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await send()).status)
  return out
}

t.test('plugin-wide rates are one budget per client across routes; a route\'s own rate is its own; 429s name the budget', async (t) => {
  const { app, hit } = await serve(t, { anonymousRate: '3/hour', userRate: '4/hour' }, (app) => {
    for (const path of ['/a', '/b', '/c']) app.get(path, async () => 'ok')
    app.get('/own', { config: { rateLimit: { rate: '2/hour' } } }, async () => 'ok')
    app.get('/anon-own', { config: { rateLimit: { anonymousRate: '1/hour' } } }, async () => 'ok')
  })
  t.same([(await hit('/a')).status, (await hit('/b')).status, (await hit('/c')).status], [200, 200, 200])
  const refused = await hit('/a')
  t.equal(refused.status, 429, 'the fourth request on any route is over the one budget of 3')
  t.same(policyNames(refused), ['anon'], 'RateLimit-Policy names the plugin-wide anonymous budget')
  t.same(refused.body['violated-policies'], ['anon'])
  t.same(await statuses(3, () => hit('/own')), [200, 200, 429], 'a route\'s own rate is counted apart')
  t.same(policyNames(await hit('/own')), ['route'])
  t.same(await statuses(2, () => hit('/anon-own')), [200, 429])
  t.same(await statuses(5, () => hit('/anon-own', as('ann'))), [200, 200, 200, 200, 429], 'users of a route with only its own anonymous rate spend the plugin-wide user budget')
  t.same(await statuses(1, () => hit('/a', as('ann'))), [429], 'the same user budget on every route')
  t.equal((await hit('/b', as('bob'))).status, 200, 'another user has his own')
  await assertKeysHaveTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('a named scope is shared by the routes that name it, and only by them', async (t) => {
  const { hit } = await serve(t, { rate: '100/hour', scopes: { search: '2/hour', uploads: { anonymousRate: '1/hour' } } }, (app) => {
    app.get('/search', { config: { rateLimit: { scope: 'search' } } }, async () => 'ok')
    app.get('/suggest', { config: { rateLimit: { scope: 'search' } } }, async () => 'ok')
    app.post('/upload', { config: { rateLimit: { scope: 'uploads' } } }, async () => 'ok')
    app.get('/other', async () => 'ok')
  })
  t.same([(await hit('/search')).status, (await hit('/suggest')).status], [200, 200])
  const refused = await hit('/search')
  t.equal(refused.status, 429)
  t.same(policyNames(refused), ['search'])
  t.equal((await hit('/other')).status, 200, 'the plugin-wide budget is another one')
  t.same(policyNames(await hit('/other')), ['anon'])
  t.same(await statuses(2, () => hit('/upload', { method: 'POST' })), [200, 429])
  const user = await hit('/upload', { method: 'POST', ...as('u1') })
  t.same([user.status, policyNames(user)], [200, ['user']], 'a scope without a user rate leaves users to the plugin-wide budget')
})

t.test('scopes are checked at startup', async (t) => {
  const reg = (opts: RateLimitOptions, route: Record<string, unknown>) => buildApp(t, {}, async (app) => {
    await app.register(rateLimit, opts)
    app.get('/x', { config: { rateLimit: route } }, async () => 'ok')
  })
  await t.rejects(reg({ scopes: { search: '1/s' } }, { scope: 'serach' }), { message: /"GET \/x config\.rateLimit\.scope".*no scope "serach"/ })
  await t.rejects(reg({ scopes: { search: '1/s' } }, { scope: 'search', rate: '2/s' }), { message: /config\.rateLimit\.rate".*scopes option/ })
  await t.rejects(reg({ rate: '1/s' }, { burst: 3 }), { message: /config\.rateLimit\.burst".*own rate only/ })
  await t.rejects(reg({ scopes: { 'a b': '1/s' } }, {}), { message: /scopes\.a b/ })
  await t.rejects(reg({ scopes: { s: { rat: '1/s' } as never } }, {}), { message: /"rateLimit\.scopes\.s\.rat".*`rate`/ })
  await t.rejects(reg({ scopes: { s: '1 a second' as never } }, {}), { code: 'FRS_INVALID_RATE', message: /scopes\.s\.rate/ })
  await t.rejects(reg({ rate: '1/s', count: 'errors' as never }, {}), { message: /"count"/ })
  await t.rejects(reg({ rate: '1/s', ipv6Subnet: 0 }, {}), { message: /"ipv6Subnet"/ })
  await t.rejects(reg({ rate: '1/s', blockCache: -1 }, {}), { message: /"blockCache"/ })
  await t.rejects(reg({ rate: '1/s', dryRun: 'yes' as never }, {}), { message: /"dryRun"/ })
})

t.test('plans: a rate chosen per request, validated when first seen', async (t) => {
  const PLANS: Record<string, '2/hour' | '4/hour'> = { free: '2/hour', pro: '4/hour' }
  const { hit } = await serve(t, {
    userRate: (request) => PLANS[(request as unknown as { user: { tier?: string } }).user.tier ?? 'free'],
    anonymousRate: (request) => request.headers['x-admin'] === '1' ? null : request.headers['x-bad'] === '1' ? '3 a day' as never : '1/hour'
  }, (app) => { app.get('/', async () => 'ok') })
  t.same(await statuses(3, () => hit('/', as('f', 'free'))), [200, 200, 429], 'free: 2')
  t.same(await statuses(5, () => hit('/', as('p', 'pro'))), [200, 200, 200, 200, 429], 'pro: 4')
  const pro = await hit('/', as('p2', 'pro'))
  t.equal(pro.headers.get('ratelimit-policy'), '"user";q=4;w=3600', 'the headers show the plan\'s quota')
  t.same(await statuses(3, () => hit('/', { headers: { 'x-admin': '1' } })), [200, 200, 200], 'null: not limited')
  const bad = await hit('/', { headers: { 'x-bad': '1' } })
  t.equal(bad.status, 500, 'a rate function that returns garbage is the server\'s fault')
  t.equal(bad.body.code, 'FRS_INVALID_RATE')
  t.match(String(bad.body.message), /anonymousRate\(\)/)
})

for (const algorithm of ['gcra', 'fixed-window', 'sliding-window'] as const) {
  t.test(`counting only failures (${algorithm}): successes are given back, concurrent failures cannot overshoot`, async (t) => {
    const { app, hit } = await serve(t, {}, (app) => {
      app.post('/login', { config: { rateLimit: { rate: '10/day', algorithm, count: 'failures' } } }, async (request, reply) => request.headers['x-password'] === 'right' ? 'welcome' : reply.code(401).send({ wrong: true }))
    })
    const login = (password: string) => hit('/login', { method: 'POST', headers: { 'x-password': password } })
    for (let i = 0; i < 15; i++) t.equal((await login('right')).status, 200)
    const deadline = Date.now() + 5000
    while (await stat(app, 'refunded') !== 15 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal(await stat(app, 'refunded'), 15, '15 successes given back')
    const wrong = await Promise.all(Array.from({ length: 200 }, () => login('wrong')))
    t.same([wrong.filter((r) => r.status === 401).length, wrong.filter((r) => r.status === 429).length], [10, 190], '200 concurrent wrong passwords: exactly 10 tried')
    await assertKeysHaveTtl(t, app.redis, app.redisSuite.prefix)
  })
}

t.test('counting only successes, with a custom success test', async (t) => {
  const { app, hit } = await serve(t, {}, (app) => {
    app.get('/export', { config: { rateLimit: { rate: '2/day', count: 'successes', successful: (_request, status) => status === 200 } } }, async (request, reply) => request.headers['x-fail'] === '1' ? reply.code(202).send('later') : 'done')
  })
  for (let i = 0; i < 4; i++) t.equal((await hit('/export', { headers: { 'x-fail': '1' } })).status, 202, 'a 202 is not a success here: not counted')
  const deadline = Date.now() + 5000
  while (await stat(app, 'refunded') !== 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(await statuses(3, () => hit('/export')), [200, 200, 429], 'two successes fill the quota')
})

t.test('dry run: headers and a log line for each refusal, but nothing refused', async (t) => {
  const logs: string[] = []
  const { app, hit } = await serve(t, { rate: '100/hour' }, (app) => {
    app.get('/new', { config: { rateLimit: { rate: '2/hour', dryRun: true } } }, async () => 'ok')
    app.get('/real', { config: { rateLimit: { rate: '1/hour' } } }, async () => 'ok')
  }, logs)
  const hits = []
  for (let i = 0; i < 4; i++) hits.push(await hit('/new'))
  t.same(hits.map((h) => h.status), [200, 200, 200, 200])
  t.same(hits.map(remaining), [1, 0, 0, 0], 'the headers say what a real limit would')
  t.equal(hits[3]?.headers.get('retry-after'), null, 'no Retry-After on a response that is let through')
  t.equal(logs.filter((l) => l.includes('dry run') && l.includes('GET /new')).length, 2, 'each would-be refusal logged')
  t.equal(await stat(app, 'dryRunRefused'), 2)
  t.same(await statuses(2, () => hit('/real')), [200, 429], 'other routes refuse')
  const all = await serve(t, { rate: '1/hour', dryRun: true }, (app) => { app.get('/', async () => 'ok') })
  t.same(await statuses(3, () => all.hit('/')), [200, 200, 200], 'dryRun on the plugin applies to every route')
})

t.test('the 429 is a quota-exceeded problem naming the policies that refused', async (t) => {
  const { hit } = await serve(t, { ban: { after: 2, duration: '1h' } }, (app) => {
    app.get('/', { config: { rateLimit: { rate: [{ name: 'minute', rate: '1/minute' }, { name: 'day', rate: '100/day' }] } } }, async () => 'ok')
  })
  await hit('/')
  const refused = await hit('/')
  t.equal(refused.status, 429)
  t.match(refused.headers.get('content-type'), /^application\/problem\+json/)
  t.match(refused.body, { type: 'https://iana.org/assignments/http-problem-types#quota-exceeded', title: 'Too Many Requests', status: 429, code: 'FRS_RATE_LIMITED', 'violated-policies': ['minute'] })
  t.equal(refused.body.retryAfter, Number(refused.headers.get('retry-after')))
  t.same((await hit('/')).body['violated-policies'], ['minute'], 'the refusal that starts the ban')
  const banned = await hit('/')
  t.same(banned.body['violated-policies'], ['minute', 'day'], 'during a ban every policy refuses')
  t.ok(Number(banned.headers.get('retry-after')) >= 3599)
})

t.test('block cache: a refused client is refused from memory until its retry time, without a Redis call', async (t) => {
  const rate = [{ name: 's', rate: '10/s' as const, burst: 1 }] // one at once, then one per 100 ms
  const cached = await serve(t, { blockCache: 100 }, (app) => { app.get('/', { config: { rateLimit: { rate } } }, async () => 'ok') })
  t.equal((await cached.hit('/')).status, 200)
  t.equal((await cached.hit('/')).status, 429, 'refused by Redis')
  const before = await scriptCalls(cached.app.redis)
  const fromMemory = await Promise.all(Array.from({ length: 20 }, () => cached.hit('/')))
  const after = await scriptCalls(cached.app.redis)
  if (fromMemory.every((h) => h.status === 429)) {
    t.equal(after - before, 0, '20 refusals, no script call')
    t.ok(fromMemory.every((h) => Number(h.headers.get('retry-after')) >= 1 && h.body.code === 'FRS_RATE_LIMITED'), 'the same 429, with Retry-After')
    t.ok((await stat(cached.app, 'blockedLocally') ?? 0) >= 20)
  } else {
    t.fail('the retry time (100 ms) passed during the burst: too slow a machine for this check')
  }
  t.equal((await cached.hit('/', as('other'))).status, 200, 'other clients are asked of Redis')
  const deadline = Date.now() + 3000
  let again = await cached.hit('/')
  while (again.status === 429 && Date.now() < deadline) { await new Promise((resolve) => setTimeout(resolve, 20)); again = await cached.hit('/') }
  t.equal(again.status, 200, 'after the retry time the client is asked of Redis again, and allowed')

  const uncached = await serve(t, {}, (app) => { app.get('/', { config: { rateLimit: { rate: '1/hour' } } }, async () => 'ok') })
  await uncached.hit('/')
  const start = await scriptCalls(uncached.app.redis)
  for (let i = 0; i < 5; i++) await uncached.hit('/')
  t.equal(await scriptCalls(uncached.app.redis) - start, 5, 'without blockCache (the default) every refusal asks Redis')
})

t.test('ipv6Subnet groups IPv6 clients by the given prefix (inject: the address is the point)', async (t) => {
  const app = await buildApp(t, {}, async (app) => {
    await app.register(rateLimit, { rate: '1/hour', ipv6Subnet: 48 })
    app.get('/', async () => 'ok')
  })
  const hit = async (remoteAddress: string) => (await app.inject({ url: '/', remoteAddress })).statusCode
  t.equal(await hit('2001:db8:1:2::1'), 200)
  t.equal(await hit('2001:db8:1:ffff::1'), 429, 'same /48')
  t.equal(await hit('2001:db8:2::1'), 200, 'next /48')
  t.equal(await hit('1.2.3.4'), 200, 'IPv4 as is')
})
