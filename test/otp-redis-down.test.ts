// Stops the file's Redis: kept apart from the other OTP tests.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import Fastify from 'fastify'
import otpPlugin from '../plugins/otp.js'
import redisPlugin from '../plugins/redis.js'
import { otpLoggerOptions } from '../lib/otp/logging.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

t.test('Redis down: every operation fails closed with FRS_OTP_UNAVAILABLE (503), never "ok"', { skip: !redis.controllable && 'this Redis cannot be stopped' }, async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'trace', stream: { write: (s: string) => { lines.push(s) } }, ...otpLoggerOptions() } })
  t.teardown(() => app.close())
  await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix(), commandTimeout: 300 })
  await app.register(otpPlugin, { secret: randomBytes(32).toString('hex'), resendCooldown: 0 })
  app.post<{ Body: { code: string } }>('/verify', async (request) => app.otp.verify({ purpose: 'login', subject: 'kim', code: request.body.code }))
  await app.ready()

  const { code } = await app.otp.issue({ purpose: 'login', subject: 'kim' })
  const { token } = await app.otp.createToken({ purpose: 'reset', subject: 'kim' })
  await redis.stop()
  let stopped = true
  t.teardown(async () => { if (stopped) await redis.start() })

  const unavailable = { code: 'FRS_OTP_UNAVAILABLE', statusCode: 503 }
  const started = Date.now()
  await t.rejects(app.otp.verify({ purpose: 'login', subject: 'kim', code }), unavailable, 'verify of the right code is not "ok"')
  await t.rejects(app.otp.issue({ purpose: 'login', subject: 'kim' }), unavailable)
  await t.rejects(app.otp.createToken({ purpose: 'reset', subject: 'kim' }), unavailable)
  await t.rejects(app.otp.consumeToken(token, { purpose: 'reset' }), unavailable)
  await t.rejects(app.otp.peekToken(token, { purpose: 'reset' }), unavailable)
  await t.rejects(app.otp.revokeAll({ purpose: 'reset', subject: 'kim' }), unavailable)
  const res = await app.inject({ method: 'POST', url: '/verify', body: { code } })
  t.equal(res.statusCode, 503, 'mapped to 503 by Fastify\'s error handler')
  t.match(res.json(), { code: 'FRS_OTP_UNAVAILABLE' })
  const elapsed = Date.now() - started
  t.ok(elapsed < 5000, `no hanging: 7 failures in ${elapsed}ms`)
  const err = await app.otp.verify({ purpose: 'login', subject: 'kim', code }).catch((e: unknown) => e) as Error
  t.ok(err.cause, 'the Redis error is the cause')
  t.notMatch(err.message, code)

  const log = lines.join('')
  t.ok(log.includes('otp: Redis failed; failing closed'), 'the failure was logged')
  t.notOk(log.includes(code), 'the code is not in the logs')
  t.notOk(log.includes(token), 'the token is not in the logs')

  await redis.start()
  stopped = false
  const deadline = Date.now() + 15_000
  let issued: unknown
  while (issued === undefined && Date.now() < deadline) {
    issued = await app.otp.issue({ purpose: 'login', subject: 'kim' }).catch(() => undefined)
    if (issued === undefined) await sleep(100)
  }
  t.ok(issued, 'works again once Redis is back')
})
