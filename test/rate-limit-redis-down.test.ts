// Redis stalls and stops under the rate limiter: fail open (logged, no made-up headers) or
// 503 with failClosed, never waiting past the command timeout, and back once Redis is.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import rateLimit from '../plugins/rate-limit.js'
import type { RateLimitOptions } from '../plugins/rate-limit.js'
import redisPlugin from '../plugins/redis.js'
import { freshPrefix, rawClient, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const COMMAND_TIMEOUT = 300

async function app (t: Test, opts: RateLimitOptions, logs: string[] = []) {
  const stream = { write: (line: string) => { logs.push(line) } }
  const fastify = Fastify({ logger: { level: 'warn', stream } })
  t.teardown(() => fastify.close())
  await fastify.register(redisPlugin, { ...redis.connection, prefix: freshPrefix(), commandTimeout: COMMAND_TIMEOUT })
  await fastify.register(rateLimit, { rate: '100/hour', ...opts })
  fastify.get('/', async () => 'ok')
  fastify.get('/tight', { config: { rateLimit: { rate: '3/hour' } } }, async () => 'ok')
  await fastify.ready()
  return fastify
}

t.test('onRedisError and failClosed: one policy, contradictions refused at startup', async (t) => {
  await t.rejects(app(t, { failClosed: true, onRedisError: 'local' }), { code: 'FRS_INVALID_OPTION', message: /"failClosed".*contradicts onRedisError: "local"/ })
  await t.rejects(app(t, { failClosed: false, onRedisError: 'closed' }), { message: /contradicts/ })
  await t.rejects(app(t, { onRedisError: 'fallback' as never }), { message: /"onRedisError"/ })
  await app(t, { failClosed: true, onRedisError: 'closed' })
  t.pass('failClosed: true with onRedisError: "closed" agree')
})

async function timed (fastify: FastifyInstance, n = 20) {
  const started = Date.now()
  const responses = await Promise.all(Array.from({ length: n }, () => fastify.inject('/')))
  return { responses, ms: Date.now() - started }
}

t.test('a stalled Redis: requests go on after the command timeout, not later', { skip: !redis.controllable }, async (t) => {
  const open = await app(t, {})
  const closed = await app(t, { failClosed: true })
  const admin = rawClient(redis)
  t.teardown(() => admin.quit())
  const masters: Redis[] = admin instanceof Cluster ? (await admin.ping(), admin.nodes('master')) : [admin as Redis]
  await Promise.all(masters.map((m) => m.client('PAUSE', 2000, 'ALL')))
  try {
    const a = await timed(open)
    t.ok(a.responses.every((r) => r.statusCode === 200 && r.headers.ratelimit === undefined), 'fail open, no headers')
    t.ok(a.ms < COMMAND_TIMEOUT + 700, `answered in ${a.ms} ms (timeout ${COMMAND_TIMEOUT} ms)`)
    const b = await timed(closed)
    t.ok(b.responses.every((r) => r.statusCode === 503), 'failClosed: 503')
    t.ok(b.ms < COMMAND_TIMEOUT + 700, `answered in ${b.ms} ms`)
  } finally {
    await Promise.all(masters.map((m) => m.client('UNPAUSE')))
  }
})

t.test('Redis stopped: fail open (logged) or 503, then recovery', { skip: !redis.controllable }, async (t) => {
  const logs: string[] = []
  const localLogs: string[] = []
  const open = await app(t, {}, logs)
  const closed = await app(t, { failClosed: true })
  const local = await app(t, { onRedisError: 'local' }, localLogs)
  const localBase = await local.listen({ host: '127.0.0.1', port: 0 })
  t.equal((await open.inject('/')).headers.ratelimit !== undefined, true, 'limited while Redis is up')
  t.equal((await fetch(localBase + '/tight')).status, 200, 'one of 3 used in Redis')

  await redis.stop()
  let restarted = false
  t.teardown(async () => { if (!restarted) await redis.start() })

  const a = await timed(open)
  t.same(a.responses.map((r) => r.statusCode), Array(20).fill(200), 'every request let through')
  t.ok(a.responses.every((r) => r.headers.ratelimit === undefined && r.headers['ratelimit-policy'] === undefined && r.headers['x-ratelimit-remaining'] === undefined), 'no made-up headers')
  t.ok(a.ms < COMMAND_TIMEOUT + 700, `answered in ${a.ms} ms`)
  t.equal(logs.filter((l) => l.includes('rate limiter: Redis failed')).length, 1, 'one warning, not one a request')
  t.match((await open.redisHealth()).rateLimit, { failedOpen: 20 })

  const b = await timed(closed)
  t.same(b.responses.map((r) => r.statusCode), Array(20).fill(503))
  t.match(b.responses[0]?.headers['content-type'], /application\/problem\+json/)
  t.match(b.responses[0]?.json(), { status: 503, code: 'FRS_RATE_LIMIT_UNAVAILABLE' })
  t.ok(b.ms < COMMAND_TIMEOUT + 700, `answered in ${b.ms} ms`)

  // onRedisError: 'local', over HTTP: this process counts on its own, from zero, with headers
  const started = Date.now()
  const tight = []
  for (let i = 0; i < 5; i++) tight.push(await fetch(localBase + '/tight'))
  t.same(tight.map((r) => r.status), [200, 200, 200, 429, 429], 'the local limiter allows the quota, then refuses')
  t.ok(Date.now() - started < 5 * (COMMAND_TIMEOUT + 700), `each answered within a command timeout (${Date.now() - started} ms for 5)`)
  t.equal(tight[2]?.headers.get('ratelimit'), '"route";r=0;t=3600', 'with its own counts in the headers')
  t.ok(Number(tight[3]?.headers.get('retry-after')) >= 1199, 'and a Retry-After')
  t.match((await local.redisHealth()).rateLimit, { failedLocal: 5 })
  t.equal(localLogs.filter((l) => l.includes('counting in this process')).length, 1, 'one warning')
  t.equal((await local.rateLimit.consume('booking:1', '1/hour')).allowed, true, 'programmatic: counted locally too')
  t.equal((await local.rateLimit.consume('booking:1', '1/hour')).allowed, false)

  const fallback = await open.rateLimit.consume('booking:1', '5/hour')
  t.same([fallback.allowed, fallback.policies], [true, []], 'programmatic: fail open, no made-up counts')
  await t.rejects(closed.rateLimit.consume('booking:1', '5/hour'), { code: 'FRS_RATE_LIMIT_UNAVAILABLE' })

  await redis.start()
  restarted = true
  for (const fastify of [open, closed, local]) {
    const deadline = Date.now() + 20_000
    let response = await fastify.inject('/')
    while (response.headers.ratelimit === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      response = await fastify.inject('/')
    }
    t.equal(response.statusCode, 200, 'recovered')
    t.ok(response.headers.ratelimit, 'limits and headers are back')
  }
})
