import t from 'tap'
import cachePlugin from '../plugins/cache.js'
import responseCache from '../plugins/response-cache.js'
import { buildApp } from './fixtures/app.js'
import { testRedis } from './fixtures/redis.js'

const redis = await testRedis()

t.test('Redis stopped mid-run: every response 200 and BYPASS; caching resumes after restart', { skip: !redis.controllable }, async (t) => {
  let calls = 0
  const app = await buildApp(t, { commandTimeout: 300 }, async (app) => {
    await app.register(cachePlugin)
    await app.register(responseCache)
    app.get('/r', { config: { cache: { ttl: '1m' } } }, async () => ({ n: ++calls }))
  })
  await app.inject('/r')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')

  await redis.stop()
  const started = Date.now()
  const down = await Promise.all(Array.from({ length: 50 }, () => app.inject('/r')))
  t.ok(down.every((r) => r.statusCode === 200), 'no 5xx from the cache')
  t.ok(down.every((r) => r.headers['x-cache'] === 'BYPASS'), 'all BYPASS')
  t.ok(Date.now() - started < 3000, `answered in ${Date.now() - started}ms`)

  await redis.start()
  const deadline = Date.now() + 15_000
  let state = ''
  while (state !== 'HIT' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    state = (await app.inject('/r')).headers['x-cache'] as string
  }
  t.equal(state, 'HIT', 'caching resumed')
})
