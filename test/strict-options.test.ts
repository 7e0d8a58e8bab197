// A misspelt option stops startup, naming the key's full path and the closest known name,
// for every plugin, their nested objects and the route configs they read.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { cache, otp, rateLimit, responseCache, session, suite } from '../plugins/index.js'
import { checkKeys, closestName } from '../lib/core/index.js'
import { buildApp } from './fixtures/app.js'
import type { TeardownHost } from './fixtures/app.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

const testServer = await testRedis()
const SECRET = 'x'.repeat(40)

type Configure = (app: FastifyInstance) => unknown
const withPlugins = (t: TeardownHost, configure: Configure, core: Record<string, unknown> = {}) => buildApp(t, core, async (app) => { await configure(app) })

// Each entry: what a new user might type, and what the error must name.
const typos: Array<[string, Configure, RegExp]> = [
  ['cache({ tll })', (app) => app.register(cache, { tll: '1m' } as never), /"cache\.tll": unknown option, did you mean `ttl`\?/],
  ['responseCache({ tll })', async (app) => { await app.register(cache); await app.register(responseCache, { tll: '1m' } as never) }, /"responseCache\.tll".*`ttl`/],
  ['rateLimit({ userRat })', (app) => app.register(rateLimit, { userRat: '10/s' } as never), /"rateLimit\.userRat".*`userRate`/],
  ['rateLimit({ failclosed })', (app) => app.register(rateLimit, { failclosed: true } as never), /"rateLimit\.failclosed".*`failClosed`/],
  ['rateLimit({ ban: { duraton } })', (app) => app.register(rateLimit, { rate: '1/s', ban: { after: 3, duraton: '1m' } } as never), /"rateLimit\.ban\.duraton".*`duration`/],
  ['session({ idleTimout })', (app) => app.register(session, { secret: SECRET, idleTimout: '1h' } as never), /"session\.idleTimout".*`idleTimeout`/],
  ['session({ cookie: { secrue } })', (app) => app.register(session, { secret: SECRET, cookie: { secrue: true } } as never), /"session\.cookie\.secrue".*`secure`/],
  ['session({ localCache: { mx } })', (app) => app.register(session, { secret: SECRET, localCache: { mx: 5 } } as never), /"session\.localCache\.mx".*`max`/],
  ['otp({ codeTTL })', (app) => app.register(otp, { secret: SECRET, codeTTL: '5m' } as never), /"otp\.codeTTL".*`codeTtl`/]
]

for (const [name, configure, message] of typos) {
  t.test(`${name} stops startup naming the key and the closest option`, async (t) => {
    await t.rejects(withPlugins(t, configure), { code: 'FRS_INVALID_OPTION', message })
  })
}

t.test('the core plugin refuses unknown keys, in connections and sentinel settings too', async (t) => {
  await t.rejects(withPlugins(t, () => {}, { comandTimeout: '1s' }), { code: 'FRS_INVALID_OPTION', message: /"redis\.comandTimeout".*`commandTimeout`/ })
  const url = testServer.connection.url ?? 'redis://127.0.0.1:6379'
  await t.rejects(withPlugins(t, () => {}, { connections: { sessions: { url, optoins: { db: 2 } } } }), { message: /"redis\.connections\.sessions\.optoins".*`options`/ })
  await t.rejects(withPlugins(t, () => {}, { connections: { s: { sentinel: { sentinels: [{ port: 1 }], name: 'm', optons: {} } } } }), { message: /"redis\.connections\.s\.sentinel\.optons".*`options`/ })
})

t.test('suite: top-level and nested typos name their path', async (t) => {
  const start = async (opts: Record<string, unknown>) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(suite, { redis: { ...testServer.connection, prefix: freshPrefix() }, ...opts } as never)
    await app.ready()
  }
  await t.rejects(start({ cahce: {} }), { code: 'FRS_INVALID_OPTION', message: /"suite\.cahce".*`cache`/ })
  await t.rejects(start({ session: { secret: SECRET, cookie: { secrue: true } } }), { message: /"session\.cookie\.secrue".*`secure`/ })
  await t.rejects(start({ rateLimit: { failclosed: true } }), { message: /"rateLimit\.failclosed".*`failClosed`/ })
})

t.test('route configs are checked when the route is added, naming the route', async (t) => {
  const routes = (add: Configure): Configure => async (app) => {
    await app.register(cache)
    await app.register(responseCache)
    await app.register(rateLimit)
    await add(app)
  }
  await t.rejects(withPlugins(t, routes((app) => { app.get('/x', { config: { cache: { tll: '1m' } } } as never, async () => 'x') })),
    { code: 'FRS_INVALID_OPTION', message: /"GET \/x config\.cache\.tll": unknown option, did you mean `ttl`\?/ })
  await t.rejects(withPlugins(t, routes((app) => { app.post('/x', { config: { invalidates: { tags: ['a'], tag: ['b'] } } } as never, async () => 'x') })),
    { message: /"POST \/x config\.invalidates\.tag".*`tags`/ })
  await t.rejects(withPlugins(t, routes((app) => { app.get('/x', { config: { rateLimit: { rate: '5/s', cots: 2 } } } as never, async () => 'x') })),
    { message: /"GET \/x config\.rateLimit\.cots".*`cost`/ })
  await t.rejects(withPlugins(t, routes((app) => { app.get('/x', { config: { rateLimit: { rate: [{ name: 'a', rate: '5/s', brust: 2 }] } } } as never, async () => 'x') })),
    { message: /"GET \/x config\.rateLimit\.rate\[0\]\.brust".*`burst`/ })

  // Only our keys of `config` are checked; undefined values and Fastify's register options pass.
  const app = await withPlugins(t, async (app) => {
    await app.register(cache, { ttl: '1m', grace: undefined, logLevel: 'warn' })
    await app.register(responseCache, { ttl: '1m', lock: undefined })
    await app.register(rateLimit, { failClosed: undefined, burst: undefined })
    app.get('/x', { config: { cache: { ttl: '1m', tags: undefined }, rateLimit: { rate: '5/minute', cost: undefined }, somethingOfAnotherPlugin: { tll: 1 } } as never }, async () => 'x')
  })
  const res = await app.inject('/x')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-cache'], 'MISS')
  t.match(res.headers['ratelimit-policy'], /q=5/)
})

t.test('__proto__ and constructor given as own keys are refused', async (t) => {
  const proto = JSON.parse('{"ttl": "1m", "__proto__": {"ttl": "1s"}}') as Record<string, unknown>
  t.ok(Object.hasOwn(proto, '__proto__'), 'an own key, as JSON.parse makes it')
  await t.rejects(withPlugins(t, (app) => app.register(cache, proto as never)), { code: 'FRS_INVALID_OPTION', message: /"cache\.__proto__": unknown option/ })
  await t.rejects(withPlugins(t, (app) => app.register(rateLimit, { rate: '1/s', constructor: 1 } as never)), { message: /"rateLimit\.constructor": unknown option/ })
})

t.test('cache lock options refuse unknown keys', async (t) => {
  const app = await withPlugins(t, (app) => app.register(cache))
  await t.rejects(async () => app.cache.lock('job', { tll: '1s' } as never), { code: 'FRS_INVALID_OPTION', message: /"lock\.tll".*`ttl`/ })
  await t.rejects(app.cache.getOrSet('k', () => 1, { lock: { wiat: 10 } } as never), { message: /"lock\.wiat".*`wait`/ })
})

t.test('checkKeys: the closest name, case-insensitive; a far name lists the known ones', async (t) => {
  t.equal(closestName('tll', ['ttl', 'grace']), 'ttl', 'a swap is one edit')
  t.equal(closestName('FAILCLOSED', ['failClosed', 'headers']), 'failClosed')
  t.equal(closestName('comandTimeout', ['connectTimeout', 'commandTimeout']), 'commandTimeout')
  t.equal(closestName('zzzz', ['ttl', 'grace']), undefined)
  t.throws(() => checkKeys({ zzzz: 1 }, ['ttl', 'grace'], 'cache'), { code: 'FRS_INVALID_OPTION', message: /"cache\.zzzz": unknown option; the known ones are ttl, grace/ })
  t.throws(() => checkKeys(null, ['ttl'], 'cache'), { message: /"cache": expected an options object/ })
  t.doesNotThrow(() => checkKeys({ ttl: 1, other: undefined }, ['ttl'], 'cache'))
})
