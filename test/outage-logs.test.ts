// During a Redis outage every request fails the same way: each plugin logs a few lines, not one
// a request, and the next line after a quiet interval says how many it left out.
import t from 'tap'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import { throttledWarn } from '../lib/core/throttle.js'
import cachePlugin from '../plugins/cache.js'
import otpPlugin from '../plugins/otp.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import redisPlugin from '../plugins/redis.js'
import responseCache from '../plugins/response-cache.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

t.test('throttledWarn logs the first, counts the rest of the interval, and reports the count', async (t) => {
  const seen: Array<[object, string]> = []
  const warn = throttledWarn({ warn: (obj, msg) => seen.push([obj, msg]) }, 50)
  for (let i = 0; i < 10; i++) warn({ i }, 'failed')
  t.same(seen, [[{ i: 0 }, 'failed']])
  await new Promise((resolve) => setTimeout(resolve, 60))
  warn({ i: 10 }, 'failed')
  t.same(seen[1], [{ i: 10, suppressed: 9 }, 'failed'])
})

t.test('300 requests during an outage: a few warning lines per plugin', { skip: !redis.controllable && 'this Redis cannot be stopped' }, async (t) => {
  const lines: Array<{ level: number, msg: string }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (s: string) => { lines.push(JSON.parse(s) as { level: number, msg: string }) } } } })
  t.teardown(() => app.close())
  await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix(), commandTimeout: 200 })
  await app.register(cachePlugin)
  await app.register(responseCache)
  await app.register(rateLimitPlugin, { rate: '1000/minute' })
  await app.register(otpPlugin, { secret: randomBytes(32).toString('hex') })
  app.get('/page', { config: { cache: { ttl: '1m' } } }, async () => ({ ok: true }))
  app.post('/code', async (_request, reply) => {
    try { await app.otp.issue({ purpose: 'login', subject: 'kim' }) } catch (err) { return reply.code(503).send({ code: (err as { code: string }).code }) }
    return { ok: true }
  })
  await app.ready()
  await redis.stop()
  t.teardown(() => redis.start())
  const before = lines.length
  const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => i % 2 === 0 ? app.inject('/page') : app.inject({ method: 'POST', url: '/code' })))
  t.ok(replies.every((r) => r.statusCode === 200 || r.statusCode === 503), 'every request answered (200 open, 503 closed)')
  const warnings = lines.slice(before).filter((l) => l.level >= 40)
  const by = (re: RegExp) => warnings.filter((l) => re.test(l.msg)).length
  t.ok(by(/^response cache/) >= 1 && by(/^response cache/) <= 2, `response cache: ${by(/^response cache/)} line(s) for 150 requests`)
  t.ok(by(/^otp:/) >= 1 && by(/^otp:/) <= 2, `otp: ${by(/^otp:/)} line(s) for 150 requests`)
  t.ok(by(/^rate limiter/) <= 2, `rate limiter: ${by(/^rate limiter/)} line(s)`)
  t.ok(warnings.length <= 12, `${warnings.length} warning lines in all for 300 failing requests`)
})
