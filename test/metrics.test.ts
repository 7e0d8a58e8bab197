// Metrics over real HTTP: known traffic (cache hits and misses, response-cache HIT/MISS, 429s,
// logins, OTP codes, a Redis outage) and a scrape of /metrics, parsed strictly, whose counters
// equal the traffic. The diagnostics channels carry the documented payloads and no secret;
// options are strict; route labels are patterns, never URLs.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { channel, subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Registry } from 'prom-client'
import { channelNames, metrics, redis as redisPlugin, suite } from '../plugins/index.js'
import type { MetricsPluginOptions, SuiteOptions } from '../plugins/index.js'
import { parsePrometheus } from './fixtures/prometheus.js'
import type { Exposition } from './fixtures/prometheus.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

declare module 'fastify' {
  interface Session { userId?: string }
}

const redis = await testRedis()
const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
const SCRAPE_TOKEN = 'Bearer scrape-secret'
const SUBJECT = 'someone@example.com'

// Every message of every channel while `fn` runs.
async function recording<T> (fn: () => Promise<T>): Promise<{ result: T, events: Array<{ channel: string, message: Record<string, unknown> }> }> {
  const events: Array<{ channel: string, message: Record<string, unknown> }> = []
  const handlers = Object.values(channelNames).map((name) => [name, (message: unknown) => { events.push({ channel: name, message: message as Record<string, unknown> }) }] as const)
  for (const [name, fn] of handlers) subscribe(name, fn)
  try {
    return { result: await fn(), events }
  } finally {
    for (const [name, fn] of handlers) unsubscribe(name, fn)
  }
}

async function start (t: Test, opts: Partial<SuiteOptions> = {}): Promise<{ app: FastifyInstance, base: string, codes: string[] }> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const codes: string[] = []
  await app.register(suite, {
    redis: { ...redis.connection, prefix: freshPrefix(), commandTimeout: 500 },
    responseCache: true,
    session: { secret: SECRET, localCache: true },
    rateLimit: true,
    otp: { secret: SECRET },
    metrics: {
      route: true,
      onRequest: async (request, reply) => {
        if (request.headers.authorization !== SCRAPE_TOKEN) return reply.code(401).send({ error: 'unauthorized' })
      }
    },
    ...opts
  })
  app.get<{ Params: { id: string } }>('/items/:id', async (request) => app.cache.getOrSet(`item:${request.params.id}`, async () => ({ id: request.params.id })))
  app.get('/page/:slug', { config: { cache: { ttl: '1m' } } }, async (request) => ({ url: request.url }))
  app.get('/limited/:id', { config: { rateLimit: { rate: '3/minute', key: () => 'one' } } }, async () => ({ ok: true }))
  app.post('/login', async (request) => {
    await request.session.regenerate()
    request.session.userId = 'user-42'
    return { ok: true }
  })
  app.get('/me', async (request) => ({ userId: request.session.userId ?? null }))
  app.post('/logout', async (request) => { await request.session.destroy(); return { ok: true } })
  app.post('/code', async () => {
    const { code } = await app.otp.issue({ purpose: 'login', subject: SUBJECT })
    codes.push(code)
    return { sent: true }
  })
  app.post<{ Body: { code: string } }>('/verify', async (request) => app.otp.verify({ purpose: 'login', subject: SUBJECT, code: request.body.code }))
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, base, codes }
}

async function scrape (base: string): Promise<Exposition> {
  const res = await fetch(base + '/metrics', { headers: { authorization: SCRAPE_TOKEN } })
  if (res.status !== 200) throw new Error(`scrape answered ${res.status}`)
  return parsePrometheus(await res.text())
}

const post = (base: string, path: string, body?: unknown, cookie?: string) => fetch(base + path, {
  method: 'POST',
  headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie === undefined ? {} : { cookie }) },
  body: body === undefined ? undefined : JSON.stringify(body)
})

t.test('every counter equals the traffic sent, through an outage', { skip: !redis.controllable && 'needs a Redis the test may stop' }, async (t) => {
  const { app, base, codes } = await start(t)
  t.equal((await fetch(base + '/metrics')).status, 401, 'the route runs the onRequest hook (auth) first')

  const { events, result: cookies } = await recording(async () => {
    // cache: 4 ids, each read twice (a miss, then a hit)
    for (let round = 0; round < 2; round++) for (const id of ['a', 'b', 'c', 'd']) t.equal((await fetch(`${base}/items/${id}`)).status, 200)
    // response cache: 3 paths, 3 requests each (MISS, HIT, HIT)
    const xcache: string[] = []
    for (let round = 0; round < 3; round++) for (const slug of ['x', 'y', 'z']) xcache.push((await fetch(`${base}/page/${slug}`)).headers.get('x-cache') as string)
    t.same(xcache, ['MISS', 'MISS', 'MISS', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT'])
    // rate limit: 3 a minute on one key, 5 requests to distinct URLs of one route
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${base}/limited/${i}`)).status)
    t.same(statuses, [200, 200, 200, 429, 429])
    // sessions: 2 logins, 3 reads each, 1 logout
    const cookies: string[] = []
    for (let i = 0; i < 2; i++) {
      const res = await post(base, '/login')
      const cookie = res.headers.getSetCookie()[0]?.split(';')[0]
      t.ok(cookie, 'login set a cookie')
      cookies.push(cookie as string)
      for (let r = 0; r < 3; r++) t.same(await (await fetch(base + '/me', { headers: { cookie: cookie as string } })).json(), { userId: 'user-42' })
    }
    t.equal((await post(base, '/logout', undefined, cookies[0])).status, 200)
    // OTP: a code, two wrong guesses, the right one, the right one again (gone), a resend inside the cooldown
    t.equal((await post(base, '/code')).status, 200)
    const code = codes[0] as string
    const wrong = code === '000000' ? '111111' : '000000'
    const verdicts: string[] = []
    for (const c of [wrong, wrong, code, code]) verdicts.push(((await (await post(base, '/verify', { code: c })).json()) as { status: string }).status)
    t.same(verdicts, ['invalid', 'invalid', 'ok', 'expired'])
    t.equal((await post(base, '/code')).status, 429, 'resend inside the cooldown')

    // Redis stops: the cache fails open (6 getOrSet bypass, the circuit opens after 5), the limiter fails open (4), OTP fails closed (1)
    await redis.stop()
    t.teardown(() => redis.start())
    for (let i = 0; i < 6; i++) t.equal((await fetch(`${base}/items/down${i}`)).status, 200, 'cache fails open')
    for (let i = 0; i < 4; i++) t.equal((await fetch(`${base}/limited/down${i}`)).status, 200, 'limiter fails open')
    t.equal((await post(base, '/verify', { code })).status, 503, 'OTP fails closed')
    return cookies
  })

  const m = await scrape(base)
  const v = (name: string, labels: Record<string, string> = {}) => m.value('frs_' + name, labels)
  // cache toolkit (namespace default); the response cache reads in namespace http
  t.equal(v('cache_misses_total', { namespace: 'default' }), 4, 'cache misses')
  t.equal(v('cache_hits_total', { namespace: 'default' }), 4, 'cache hits')
  t.equal(v('cache_bypass_total', { namespace: 'default' }), 6, 'getOrSet computed without Redis')
  const readErrors = v('cache_errors_total', { namespace: 'default', operation: 'read' }) ?? 0
  t.equal(readErrors, 6, 'each failed read is an error')
  t.equal(v('cache_circuit_state', { connection: 'default' }), 1, 'the circuit is open after 5 failures')
  t.equal(v('cache_hits_total', { namespace: 'http' }), 6, 'response cache entries found')
  t.equal(v('cache_misses_total', { namespace: 'http' }), 3)
  // response cache
  t.equal(v('response_cache_requests_total', { route: '/page/:slug', result: 'MISS' }), 3)
  t.equal(v('response_cache_requests_total', { route: '/page/:slug', result: 'HIT' }), 6)
  // rate limiting, by the route's pattern and its policy
  const allowed = m.samples('frs_rate_limit_requests_total').filter((s) => s.labels.outcome === 'allowed')
  t.equal(allowed.length, 1, 'one series of allowed requests')
  const policy = allowed[0]?.labels.policy as string
  t.same(allowed[0]?.labels, { route: '/limited/:id', policy, outcome: 'allowed' })
  t.equal(allowed[0]?.value, 3)
  t.equal(v('rate_limit_requests_total', { route: '/limited/:id', policy, outcome: 'limited' }), 2)
  t.equal(v('rate_limit_requests_total', { route: '/limited/:id', policy, outcome: 'failed-open' }), 4)
  // sessions: 2 creations; 4 writes (regenerate() saves the new session, the end of the request
  // its user id); 6 reads and the logout's; 1 revocation (regenerate() ends no stored session)
  t.equal(v('session_creations_total'), 2)
  t.equal(v('session_writes_total'), 4)
  t.equal(v('session_reads_total', { found: 'true' }), 7)
  t.equal(v('session_revocations_total'), 1)
  const localHits = app.sessions.localCache?.stats.hits
  t.equal(v('session_local_cache_hits_total'), localHits, `local-cache hits as the local cache counts them (${localHits})`)
  // OTP
  t.equal(v('otp_issued_total', { purpose: 'login' }), 1)
  t.equal(v('otp_issue_refused_total', { purpose: 'login', reason: 'cooldown' }), 1)
  t.equal(v('otp_verifications_total', { purpose: 'login', result: 'wrong' }), 2)
  t.equal(v('otp_verifications_total', { purpose: 'login', result: 'verified' }), 1)
  t.equal(v('otp_verifications_total', { purpose: 'login', result: 'expired' }), 1)
  t.equal(v('otp_errors_total', { purpose: 'login', operation: 'verify' }), 1)
  // Redis latency: every successful call of the suite, by connection
  const calls = v('redis_command_duration_seconds_count', { connection: 'default' }) ?? 0
  const expected = events.filter((e) => e.channel === channelNames.redisCall && e.message.ok === true).length
  t.equal(calls, expected, `${calls} timed calls, one per redisCall event`)
  t.ok(calls >= 20, 'the traffic made Redis calls')
  t.equal(v('redis_command_duration_seconds_bucket', { connection: 'default', le: '+Inf' }), calls)
  t.ok((v('redis_command_errors_total', { connection: 'default' }) ?? 0) >= 1, 'failed calls are counted apart')

  // Payloads: the documented shapes, and no secret in any of them
  const first = (channel: string) => events.find((e) => e.channel === channel)?.message
  const prefix = app.redisSuite.prefix
  t.match(first(channelNames.cacheRead), { prefix, namespace: 'http', keys: 1, hits: 0, misses: 1, stale: 0, errors: 0 })
  t.match(first(channelNames.cacheGetOrSet), { prefix, namespace: 'default', state: 'miss' })
  t.match(first(channelNames.responseCache), { prefix, route: '/page/:slug', method: 'GET', result: 'MISS', refresh: false })
  t.match(first(channelNames.rateLimit), { prefix, route: '/limited/:id', method: 'GET', policy, outcome: 'allowed', source: 'redis', cost: 1 })
  t.match(first(channelNames.session), { prefix, operation: 'create' })
  t.match(first(channelNames.otp), { prefix, operation: 'issue', purpose: 'login', result: 'issued' })
  t.match(first(channelNames.circuit), { prefix, connection: 'default', state: 'open' })
  t.match(first(channelNames.redisCall), { prefix, connection: 'default', feature: String, durationMs: Number, ok: true })
  t.ok(events.some((e) => e.channel === channelNames.session && e.message.operation === 'read' && e.message.source === 'local' && e.message.found === true), 'a session read event')
  const text = JSON.stringify(events)
  const cookieValues = cookies.flatMap((c) => [c, decodeURIComponent(c.split('=')[1] as string), decodeURIComponent(c.split('=')[1] as string).split('.')[0] as string])
  for (const secret of [...codes, SUBJECT, 'user-42', SECRET, ...cookieValues, '/page/x', '/limited/3', 'item:a']) {
    t.notOk(text.includes(secret), `no payload holds ${secret.slice(0, 12)}…`)
  }
  t.ok(events.length > 50, `${events.length} events checked`)
})

t.test('200 URLs of one route pattern are one label value', async (t) => {
  const { base } = await start(t)
  await Promise.all(Array.from({ length: 200 }, (_, i) => fetch(`${base}/page/p${i}?q=${i}`).then((r) => r.arrayBuffer())))
  await Promise.all(Array.from({ length: 10 }, (_, i) => fetch(`${base}/limited/u${i}`).then((r) => r.arrayBuffer())))
  const m = await scrape(base)
  const responses = m.samples('frs_response_cache_requests_total')
  t.same([...new Set(responses.map((s) => s.labels.route))], ['/page/:slug'], 'one route label value')
  t.equal(responses.reduce((n, s) => n + s.value, 0), 200, 'every request counted')
  const limited = m.samples('frs_rate_limit_requests_total')
  t.same([...new Set(limited.map((s) => s.labels.route))], ['/limited/:id'])
  t.equal(limited.reduce((n, s) => n + s.value, 0), 10)
  for (const family of m.families.values()) {
    for (const s of family.samples) t.notOk(Object.values(s.labels).some((l) => /p\d+|u\d+|\?/.test(l)), `${s.name} holds no raw URL`)
  }
})

t.test('options: unknown ones refused by name, bad values named, the route off by default', async (t) => {
  const bare = async (opts: MetricsPluginOptions) => {
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
    await app.register(metrics, opts)
    await app.ready()
    return app
  }
  await t.rejects(bare({ rout: true } as never), { code: 'FRS_INVALID_OPTION', message: /"metrics.rout": unknown option, did you mean `route`\?/ })
  await t.rejects(bare({ latencyBuckets: [0.1, 0.01] }), { code: 'FRS_INVALID_OPTION', message: /"metrics.latencyBuckets"/ })
  await t.rejects(bare({ prefix: 'frs-' }), { code: 'FRS_INVALID_OPTION', message: /"metrics.prefix"/ })
  await t.rejects(bare({ route: 'metrics' }), { code: 'FRS_INVALID_OPTION', message: /"metrics.route"/ })
  await t.rejects(bare({ registry: {} as never }), { code: 'FRS_INVALID_OPTION', message: /"metrics.registry"/ })
  const suiteApp = Fastify({ logger: false })
  t.teardown(() => suiteApp.close())
  await t.rejects(async () => { await suiteApp.register(suite, { redis: { ...redis.connection, prefix: freshPrefix() }, metrics: { registy: new Registry() } as never }).ready() }, { code: 'FRS_INVALID_OPTION', message: /"metrics.registy".*`registry`/ })

  const app = await bare({})
  t.equal((await app.inject('/metrics')).statusCode, 404, 'no route unless asked for')
  t.match(await app.suiteMetrics.text(), /# TYPE frs_cache_hits_total counter/)
  // Your registry: the metrics join what is already on it; a second app on it needs another prefix.
  const registry = new Registry()
  await bare({ registry })
  t.ok(registry.getSingleMetric('frs_rate_limit_requests_total'), 'registered on the given registry')
  await t.rejects(bare({ registry }), { code: 'FRS_INVALID_OPTION', message: /"metrics.registry".*frs_cache_hits_total/ })
  await bare({ registry, prefix: 'other_' })
  t.ok(registry.getSingleMetric('other_cache_hits_total'), 'another prefix on the same registry')
})

t.test('the metrics subscribe while their app runs, and only then', async (t) => {
  const listened = () => Object.values(channelNames).filter((name) => channel(name).hasSubscribers)
  t.same(listened(), [], 'nobody listens before: the publishers build no payload')
  const off = await start(t, { metrics: false })
  t.notOk(off.app.hasDecorator('suiteMetrics'), 'metrics are off unless asked for')
  t.same(listened(), [])
  const { app, base } = await start(t)
  t.same(listened(), Object.values(channelNames), 'every channel has the metrics as subscriber')
  await fetch(`${base}/items/q`)
  // The other app's traffic (another prefix) is not counted.
  await fetch(`${off.base}/items/q`)
  await fetch(`${off.base}/items/q`)
  const m = await scrape(base)
  t.equal(m.value('frs_cache_misses_total', { namespace: 'default' }), 1)
  t.equal(m.value('frs_cache_hits_total', { namespace: 'default' }), undefined, 'the hit was the other app\'s')
  await app.close()
  t.same(listened(), [], 'closing the app unsubscribes')
})
