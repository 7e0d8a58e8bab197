import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import { parseList } from 'structured-headers'
import rateLimit from '../plugins/rate-limit.js'
import type { RateLimitOptions } from '../plugins/rate-limit.js'
import redisPlugin from '../plugins/redis.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, freshPrefix, scanKeys, testRedis } from './fixtures/redis.js'

// The fixture's assertKeysHaveTtl types its `t` narrower than tap's Test; adapt it here.
const assertTtl = (t: Test, client: Redis | Cluster, prefix: string) =>
  assertKeysHaveTtl({ ok: (v, m) => t.ok(v, m ?? ''), same: (a, b, m) => t.same(a, b, m ?? '') }, client, prefix)

const redis = await testRedis()

async function limited (t: Test, opts: RateLimitOptions, routes?: (app: FastifyInstance) => void, core: { prefix?: string } = {}) {
  return buildApp(t, core, async (app) => {
    // Users come from a header here; the default resolver reads request.user?.id.
    app.addHook('onRequest', async (request) => {
      const id = request.headers['x-user']
      if (typeof id === 'string') (request as unknown as { user: { id: string } }).user = { id }
    })
    await app.register(rateLimit, opts)
    if (routes) routes(app)
    else app.get('/', async () => ({ ok: true }))
  })
}

const statuses = (responses: LightMyRequestResponse[]) => {
  const out: Record<number, number> = {}
  for (const r of responses) out[r.statusCode] = (out[r.statusCode] ?? 0) + 1
  return out
}

function sf (value: unknown): Array<[unknown, Record<string, unknown>]> {
  return parseList(String(value)).map(([item, params]) => [item, Object.fromEntries(params)])
}

t.test('exactness: limit 100, 300 parallel requests over 3 instances → exactly 100 allowed, for every algorithm', async (t) => {
  for (const algorithm of ['gcra', 'fixed-window', 'sliding-window'] as const) {
    const prefix = freshPrefix()
    // A fixed window resets on the clock: a day long, so that the run cannot straddle an edge.
    const rate = algorithm === 'fixed-window' ? '100/day' : '100/hour'
    const apps = await Promise.all([1, 2, 3].map(() => limited(t, { rate, algorithm }, undefined, { prefix })))
    const responses = await Promise.all(Array.from({ length: 300 }, (_, i) => (apps[i % 3] as FastifyInstance).inject('/')))
    t.same(statuses(responses), { 200: 100, 429: 200 }, algorithm)
    const remaining = responses.filter((r) => r.statusCode === 200).map((r) => sf(r.headers.ratelimit)[0]?.[1].r).sort((a, b) => Number(a) - Number(b))
    t.same(remaining, Array.from({ length: 100 }, (_, i) => i), `${algorithm}: every remaining count from 99 to 0 seen once`)
    await assertTtl(t, (apps[0] as FastifyInstance).redis, prefix)
  }
})

t.test('HEAD and GET of one route share one counter', async (t) => {
  const app = await limited(t, { rate: '3/minute' })
  const codes = [
    (await app.inject('/')).statusCode,
    (await app.inject({ method: 'HEAD', url: '/' })).statusCode,
    (await app.inject('/')).statusCode,
    (await app.inject({ method: 'HEAD', url: '/' })).statusCode
  ]
  t.same(codes, [200, 200, 200, 429])
})

t.test('headers: draft structured fields, and a 429 problem with Retry-After >= t', async (t) => {
  const app = await limited(t, { rate: '2/minute' })
  const first = await app.inject('/')
  t.equal(first.statusCode, 200)
  t.same(sf(first.headers['ratelimit-policy']), [['anon', { q: 2, w: 60 }]])
  t.same(sf(first.headers.ratelimit), [['anon', { r: 1, t: 30 }]], 'GCRA: one of two used, 30 s until it is back')
  t.equal(first.headers['x-ratelimit-limit'], undefined, 'no legacy headers by default')
  await app.inject('/')
  const refused = await app.inject('/')
  t.equal(refused.statusCode, 429)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  const body = refused.json()
  t.match(body, { type: 'https://iana.org/assignments/http-problem-types#quota-exceeded', status: 429, title: 'Too Many Requests', code: 'FRS_RATE_LIMITED' })
  t.same(body['violated-policies'], ['anon'], 'the quota-exceeded problem names the policy that refused')
  const [, params] = sf(refused.headers.ratelimit)[0] as [unknown, Record<string, number>]
  t.equal(params.r, 0)
  t.ok(Number(refused.headers['retry-after']) >= (params.t as number), `Retry-After ${refused.headers['retry-after']} >= t ${params.t}`)
  t.ok(Number(refused.headers['retry-after']) >= 29 && Number(refused.headers['retry-after']) <= 30)
  t.equal(body.retryAfter, Number(refused.headers['retry-after']))
})

t.test('several named policies on one route, and the legacy headers', async (t) => {
  const app = await limited(t, { headers: 'both' }, (app) => {
    app.get('/book', { config: { rateLimit: { rate: [{ name: 'burst', rate: '2/hour', algorithm: 'fixed-window' }, { name: 'daily', rate: '100/day' }] } } }, async () => 'ok')
  })
  const [a, b, c] = [await app.inject('/book'), await app.inject('/book'), await app.inject('/book')]
  t.same([a.statusCode, b.statusCode, c.statusCode], [200, 200, 429])
  t.same(sf(a.headers['ratelimit-policy']), [['burst', { q: 2, w: 3600 }], ['daily', { q: 100, w: 86400 }]])
  t.same(sf(b.headers.ratelimit).map(([n, p]) => [n, p.r]), [['burst', 0], ['daily', 98]])
  t.same(sf(c.headers.ratelimit).map(([n, p]) => [n, p.r]), [['burst', 0], ['daily', 98]], 'the refusal used none of the daily quota')
  t.same([b.headers['x-ratelimit-limit'], b.headers['x-ratelimit-remaining']], ['2', '0'], 'legacy headers show the tightest policy')
})

t.test('anonymous clients by IP and users by id, with separate rates', async (t) => {
  const app = await limited(t, { anonymousRate: '2/hour', userRate: '4/hour' })
  const anon = []
  for (let i = 0; i < 3; i++) anon.push((await app.inject('/')).statusCode)
  t.same(anon, [200, 200, 429])
  const alice = []
  for (let i = 0; i < 5; i++) alice.push((await app.inject({ url: '/', headers: { 'x-user': 'alice' } })).statusCode)
  t.same(alice, [200, 200, 200, 200, 429], 'a user is not the IP she comes from, and has the user rate')
  t.equal((await app.inject({ url: '/', headers: { 'x-user': 'bob' } })).statusCode, 200, 'users are counted apart')
  t.same(sf((await app.inject({ url: '/', headers: { 'x-user': 'carol' } })).headers['ratelimit-policy']), [['user', { q: 4, w: 3600 }]])

  const usersOnly = await limited(t, { userRate: '1/hour' })
  t.same([(await usersOnly.inject('/')).statusCode, (await usersOnly.inject('/')).statusCode], [200, 200], 'no anonymous rate: anonymous clients are not limited')
  const dave = { url: '/', headers: { 'x-user': 'dave' } }
  t.same([(await usersOnly.inject(dave)).statusCode, (await usersOnly.inject(dave)).statusCode], [200, 429])
})

t.test('the user comes from request.session.userId by default, or from the user option', async (t) => {
  const app = await buildApp(t, {}, async (app) => {
    app.addHook('onRequest', async (request) => {
      const id = request.headers['x-session-user']
      if (typeof id === 'string') (request as unknown as { session: { userId: string } }).session = { userId: id }
    })
    await app.register(rateLimit, { anonymousRate: '1/hour', userRate: '2/hour' })
    app.get('/', async () => 'ok')
  })
  const as = (id: string) => ({ url: '/', headers: { 'x-session-user': id } })
  t.same([(await app.inject(as('s1'))).statusCode, (await app.inject(as('s1'))).statusCode, (await app.inject(as('s1'))).statusCode], [200, 200, 429])
  t.same(sf((await app.inject(as('s2'))).headers['ratelimit-policy'])[0]?.[0], 'user')

  const custom = await limited(t, { anonymousRate: '1/hour', userRate: '2/hour', user: (request) => request.headers['x-api-key'] as string | undefined })
  const key = { url: '/', headers: { 'x-api-key': 'k1' } }
  t.same([(await custom.inject(key)).statusCode, (await custom.inject(key)).statusCode, (await custom.inject(key)).statusCode], [200, 200, 429])
})

t.test('hook: preHandler sees a user set by a later hook; onExceeded may send its own reply', async (t) => {
  const app = await buildApp(t, {}, async (app) => {
    await app.register(rateLimit, {
      hook: 'preHandler',
      anonymousRate: '1/hour',
      userRate: '2/hour',
      onExceeded: async (request, reply, result) => {
        if (request.headers['x-custom'] === '1') await reply.code(429).send({ mine: true, retryAfterMs: result.retryAfterMs })
      }
    })
    app.addHook('preHandler', async (request) => {
      const id = request.headers['x-user']
      if (typeof id === 'string') (request as unknown as { user: { id: string } }).user = { id }
    })
    app.post('/', async () => 'ok')
  })
  const as = { method: 'POST' as const, url: '/', headers: { 'x-user': 'eve' } }
  t.same([(await app.inject(as)).statusCode, (await app.inject(as)).statusCode], [200, 200], 'the user rate applies')
  const custom = await app.inject({ ...as, headers: { ...as.headers, 'x-custom': '1' } })
  t.equal(custom.statusCode, 429)
  t.match(custom.json(), { mine: true })
  t.ok(custom.headers['retry-after'], 'the headers are set before onExceeded')
})

t.test('limits live on the connection named by the connection option (the seeds\' own database)', { skip: redis.mode === 'cluster' }, async (t) => {
  const url = redis.connection.url as string
  const app = await buildApp(t, { connections: { limits: url + '/3' } }, async (app) => {
    await app.register(rateLimit, { connection: 'limits', rate: '1/hour' })
    app.get('/', async () => 'ok')
  })
  t.same([(await app.inject('/')).statusCode, (await app.inject('/')).statusCode], [200, 429])
  t.same(await scanKeys(app.redis, app.redisSuite.prefix), [], 'nothing in the default database')
  t.equal((await scanKeys(app.redisConnection('limits'), app.redisSuite.prefix)).length, 1, 'one key in db 3')
})

t.test('IPv6 clients are grouped by /64; ::ffff:1.2.3.4 is 1.2.3.4', async (t) => {
  const app = await limited(t, { rate: '1/hour' })
  const hit = async (remoteAddress: string) => (await app.inject({ url: '/', remoteAddress })).statusCode
  t.equal(await hit('2001:db8:1:2::1'), 200)
  t.equal(await hit('2001:db8:1:2:ffff:ffff:ffff:fffe'), 429, 'same /64')
  t.equal(await hit('2001:db8:1:3::1'), 200, 'next /64')
  t.equal(await hit('1.2.3.4'), 200)
  t.equal(await hit('::ffff:1.2.3.4'), 429, 'the mapped address is the same client')
})

t.test('X-Forwarded-For counts only with trustProxy', async (t) => {
  const hits = async (app: FastifyInstance) => {
    const out = []
    for (const xff of ['9.9.9.1', '9.9.9.2', '9.9.9.3']) out.push((await app.inject({ url: '/', remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': xff } })).statusCode)
    return out
  }
  const plain = await limited(t, { rate: '1/hour' })
  t.same(await hits(plain), [200, 429, 429], 'spoofed X-Forwarded-For ignored: all from 10.0.0.1')

  const proxied = Fastify({ trustProxy: '10.0.0.1' })
  t.teardown(() => proxied.close())
  await proxied.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
  await proxied.register(rateLimit, { rate: '1/hour' })
  proxied.get('/', async () => 'ok')
  t.same(await hits(proxied), [200, 200, 200], 'behind a trusted proxy each forwarded client counts')
})

t.test('(route, client) pairs never meet in one key: (user1, 2x) vs (user12, x)', async (t) => {
  const app = await limited(t, { rate: '1/hour', key: (request) => request.headers['x-client'] as string }, (app) => {
    app.get('/user1', async () => 'ok')
    app.get('/user12', async () => 'ok')
  })
  t.equal((await app.inject({ url: '/user1', headers: { 'x-client': '2x' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/user12', headers: { 'x-client': 'x' } })).statusCode, 200, 'counted apart')
  t.equal((await app.inject({ url: '/user1', headers: { 'x-client': '2x' } })).statusCode, 429, 'while each pair is counted')
  const keys = await scanKeys(app.redis, app.redisSuite.prefix)
  t.equal(keys.length, 2)
  t.ok(keys.every((k) => !k.includes('2x') && /:k:#/.test(k)), 'custom keys (maybe API keys) are stored as digests')
  t.ok(keys.every((k) => /\{.*\}$/.test(k)), 'every key is one hash tag (one Cluster slot per request)')
})

t.test('only routes that ask are limited without a global rate; false exempts; cost; allow list; onExceeded', async (t) => {
  const exceeded: string[] = []
  const app = await limited(t, { allowList: ['10.0.0.0/8', '2001:db8::/32'], onExceeded: (request) => { exceeded.push(request.url) } }, (app) => {
    app.get('/free', async () => 'ok')
    app.get('/off', { config: { rateLimit: false } }, async () => 'ok')
    app.post('/login', { config: { rateLimit: { rate: '5/15m', cost: 2 } } }, async () => 'ok')
  })
  const free = await app.inject('/free')
  t.equal(free.headers.ratelimit, undefined, 'no hook on a route without limits')
  t.equal((await app.inject('/off')).headers.ratelimit, undefined)
  const logins = []
  for (let i = 0; i < 3; i++) logins.push(await app.inject({ method: 'POST', url: '/login' }))
  t.same(logins.map((r) => r.statusCode), [200, 200, 429], 'cost 2 of 5: two logins')
  t.same(exceeded, ['/login'])
  for (const remoteAddress of ['10.1.2.3', '::ffff:10.9.9.9', '2001:db8:5::1', '2001:db8:6::1%eth0']) {
    const r = await app.inject({ method: 'POST', url: '/login', remoteAddress })
    t.equal(r.statusCode, 200, `${remoteAddress} is allowed`)
    t.equal(r.headers.ratelimit, undefined)
  }
  t.equal((await app.inject({ method: 'POST', url: '/login', remoteAddress: '11.0.0.1' })).headers.ratelimit !== undefined, true, 'other addresses are limited')
  await assertTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('a global rate covers every route unless false, and routes override it', async (t) => {
  const app = await limited(t, { rate: '1/hour', headers: false }, (app) => {
    app.get('/a', async () => 'ok')
    app.get('/b', { config: { rateLimit: false } }, async () => 'ok')
    app.get('/c', { config: { rateLimit: { rate: '3/hour' } } }, async () => 'ok')
  })
  t.same([(await app.inject('/a')).statusCode, (await app.inject('/a')).statusCode], [200, 429])
  t.same([(await app.inject('/b')).statusCode, (await app.inject('/b')).statusCode], [200, 200])
  const c = []
  for (let i = 0; i < 4; i++) c.push(await app.inject('/c'))
  t.same(c.map((r) => r.statusCode), [200, 200, 200, 429])
  t.equal(c[0]?.headers.ratelimit, undefined, 'headers: false')
  t.ok(c[3]?.headers['retry-after'], 'a 429 still says when to retry')
})

t.test('bans after repeated excess', async (t) => {
  const app = await limited(t, { rate: '1/hour', ban: { after: 2, duration: '1h' } })
  const codes = []
  for (let i = 0; i < 3; i++) codes.push(await app.inject('/'))
  t.same(codes.map((r) => r.statusCode), [200, 429, 429])
  t.ok(Number(codes[2]?.headers['retry-after']) >= 3599, 'banned for the ban duration')
  await app.rateLimit.reset('x') // unrelated key: no effect
  t.equal((await app.inject('/')).statusCode, 429)
})

t.test('programmatic consume / peek / reset (the seeds\' booking limit)', async (t) => {
  const app = await limited(t, {})
  const key = 'booking:42'
  const first = await app.rateLimit.peek(key, '5/hour')
  t.same([first.allowed, first.policies[0]?.remaining], [true, 5])
  const results = await Promise.all(Array.from({ length: 8 }, () => app.rateLimit.consume(key, '5/hour')))
  t.equal(results.filter((r) => r.allowed).length, 5)
  t.equal((await app.rateLimit.peek(key, '5/hour')).allowed, false)
  t.equal((await app.rateLimit.consume('booking:43', '5/hour')).allowed, true, 'another user')
  await app.rateLimit.reset(key)
  t.equal((await app.rateLimit.consume(key, '5/hour')).policies[0]?.remaining, 4)
  const multi = await app.rateLimit.consume('otp:alice', [{ name: 'min', rate: '1/minute' }, { name: 'day', rate: '10/day' }])
  t.same(multi.policies.map((p) => [p.policy.name, p.remaining]), [['min', 0], ['day', 9]])
  await t.rejects(app.rateLimit.consume('', '5/hour'), { code: 'FRS_INVALID_OPTION' })
  await t.rejects(app.rateLimit.consume('k', '5 a day' as never), { code: 'FRS_INVALID_RATE' })
  await t.rejects(app.rateLimit.consume('k', '5/day', { cost: 1.5 }), { code: 'FRS_INVALID_OPTION', message: /"cost"/ })
  t.same((await app.rateLimit.consume('cost', '5/day', { cost: 3 })).policies[0]?.remaining, 2, 'a cost')
  await assertTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('recovers after SCRIPT FLUSH', async (t) => {
  const app = await limited(t, { rate: '3/hour' })
  t.equal((await app.inject('/')).statusCode, 200)
  const nodes: Redis[] = app.redis instanceof Cluster ? app.redis.nodes('master') : [app.redis]
  await Promise.all(nodes.map((n) => n.script('FLUSH')))
  const after = await app.inject('/')
  t.equal(after.statusCode, 200)
  t.equal(sf(after.headers.ratelimit)[0]?.[1].r, 1, 'the count went on')
})

t.test('health section counts outcomes', async (t) => {
  const app = await limited(t, { rate: '1/hour' })
  await app.inject('/')
  await app.inject('/')
  const health = await app.redisHealth()
  t.same(health.rateLimit, { allowed: 1, limited: 1, blockedLocally: 0, dryRunRefused: 0, refunded: 0, failedOpen: 0, failedClosed: 0, failedLocal: 0 })
})

t.test('bad options fail at registration, naming the option', async (t) => {
  const cases: Array<[RateLimitOptions, RegExp]> = [
    [{ rate: '10 per minute' as never }, /"rate"/],
    [{ userRate: [{ name: 'x', rate: '1/s' }, { name: 'x', rate: '2/s' }] }, /userRate\[1\]\.name/],
    [{ algorithm: 'leaky' as never }, /"algorithm"/],
    [{ headers: 'ietf' as never }, /"headers"/],
    [{ hook: 'onSend' as never }, /"hook"/],
    [{ ban: { after: 0, duration: '1m' } }, /"ban.after"/],
    [{ ban: { after: 3, duration: 'soon' as never } }, /"ban.duration"/],
    [{ allowList: ['10.0.0.0/x'] }, /"allowList"/],
    [{ key: 'ip' as never }, /"key"/],
    [{ rate: '1/s', burst: 2, algorithm: 'fixed-window' }, /burst/]
  ]
  for (const [opts, message] of cases) {
    await t.rejects(limited(t, opts), { message }, JSON.stringify(opts))
  }
  await t.rejects(limited(t, {}, (app) => { app.get('/x', { config: { rateLimit: { cost: 2 } } }, async () => 'ok') }), { message: /"GET \/x config.rateLimit.rate".*no rate/ })
  await t.rejects(limited(t, {}, (app) => { app.get('/x', { config: { rateLimit: { rate: '1/s', cost: 0 } } }, async () => 'ok') }), { message: /cost/ })
})
