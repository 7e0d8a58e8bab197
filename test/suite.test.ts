import t from 'tap'
import Fastify from 'fastify'
import { suite } from '../plugins/index.js'
import type { SuiteOptions } from '../plugins/index.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const SECRET = 'x'.repeat(40)

async function start (t: { teardown: (fn: () => unknown) => void }, opts: Omit<SuiteOptions, 'redis'>) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(suite, { redis: { ...redis.connection, prefix: freshPrefix() }, ...opts })
  return app
}

t.test('registers every part from one options object', async (t) => {
  const app = await start(t, { responseCache: true, session: { secret: SECRET }, rateLimit: true, otp: { secret: SECRET } })
  app.get('/r', { config: { cache: true, rateLimit: { rate: '5/minute' } } }, async () => ({ ok: true }))
  await app.ready()
  for (const decorator of ['redis', 'cache', 'responseCache', 'sessions', 'rateLimit', 'otp']) t.ok(app.hasDecorator(decorator), decorator)
  const first = await app.inject('/r')
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  t.match(first.headers['ratelimit-policy'], /q=5/)
})

t.test('the core plugin and the cache are on by default; the rest only when given', async (t) => {
  const app = await start(t, {})
  await app.ready()
  t.ok(app.hasDecorator('cache'))
  t.notOk(app.hasDecorator('otp'))
  t.notOk(app.hasDecorator('rateLimit'))
  const bare = await start(t, { cache: false })
  await bare.ready()
  t.notOk(bare.hasDecorator('cache'))
})

t.test('bad suite options stop startup with an error naming them', async (t) => {
  await t.rejects(async () => { await (await start(t, { caches: {} } as never)).ready() }, { code: 'FRS_INVALID_OPTION', message: /"suite.caches"/ })
  await t.rejects(async () => { await (await start(t, { cache: false, responseCache: true })).ready() }, { code: 'FRS_INVALID_OPTION', message: /"responseCache"/ })
  await t.rejects(async () => { await (await start(t, { otp: { secret: 'short' } })).ready() }, { code: 'FRS_INVALID_OPTION', message: /secret/ })
})
