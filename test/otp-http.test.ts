import { randomBytes } from 'node:crypto'
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import otpPlugin from '../plugins/otp.js'
import redisPlugin from '../plugins/redis.js'
import { otpLoggerOptions, redactUrl } from '../lib/otp/logging.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

interface Outbox { codes: string[], tokens: string[] }

/** An app as a user would write it, logging at trace level into `lines`. */
async function httpApp (t: { teardown: (fn: () => unknown) => void }, lines: string[], outbox: Outbox): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: 'trace', stream: { write: (s: string) => { lines.push(s) } }, ...otpLoggerOptions() } })
  t.teardown(() => app.close())
  await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
  await app.register(otpPlugin, { secret: randomBytes(32).toString('hex'), resendCooldown: '60s' })
  app.post<{ Body: { email: string } }>('/otp/send', async (request) => {
    const { code } = await app.otp.issue({ purpose: 'login', subject: request.body.email })
    outbox.codes.push(code)
    return { sent: true }
  })
  app.post<{ Body: { email: string, code: string } }>('/otp/verify', async (request, reply) => {
    request.log.info({ body: request.body }, 'verify attempt') // a careless app: the body holds the code
    const result = await app.otp.verify({ purpose: 'login', subject: request.body.email, code: request.body.code })
    return reply.code(result.status === 'ok' ? 200 : 400).send(result)
  })
  app.post<{ Body: { email: string } }>('/reset/request', async (request) => {
    const { token } = await app.otp.createToken({ purpose: 'reset', subject: request.body.email })
    outbox.tokens.push(token)
    return { sent: true }
  })
  app.get<{ Querystring: { token: string } }>('/reset', async (request, reply) => {
    const found = await app.otp.peekToken(request.query.token, { purpose: 'reset' })
    return found === null ? reply.code(404).send({ ok: false }) : { email: found.subject }
  })
  app.post<{ Body: { token: string } }>('/reset', async (request, reply) => {
    request.log.info({ body: request.body }, 'reset attempt')
    const found = await app.otp.consumeToken(request.body.token, { purpose: 'reset' })
    return found === null ? reply.code(404).send({ ok: false }) : { email: found.subject }
  })
  await app.ready()
  return app
}

t.test('routes: a 429 with Retry-After through Fastify\'s error handler; codes and tokens never logged', async (t) => {
  const lines: string[] = []
  const outbox: Outbox = { codes: [], tokens: [] }
  const app = await httpApp(t, lines, outbox)
  const email = 'zoe@example.com'

  t.equal((await app.inject({ method: 'POST', url: '/otp/send', body: { email } })).statusCode, 200)
  const again = await app.inject({ method: 'POST', url: '/otp/send', body: { email } })
  t.equal(again.statusCode, 429)
  t.match(again.json(), { code: 'FRS_OTP_RATE_LIMITED', message: /retry in \d+ seconds/ })
  t.match(again.headers['retry-after'], /^(59|60)$/, 'Retry-After header')

  const code = outbox.codes[0] as string
  const bad = code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10)
  const wrongRes = await app.inject({ method: 'POST', url: '/otp/verify', body: { email, code: bad } })
  t.same(wrongRes.json(), { status: 'invalid', attemptsLeft: 4 })
  t.equal((await app.inject({ method: 'POST', url: '/otp/verify', body: { email, code } })).statusCode, 200)

  await app.inject({ method: 'POST', url: '/reset/request', body: { email } })
  const token = outbox.tokens[0] as string
  t.same((await app.inject(`/reset?token=${token}`)).json(), { email }, 'GET confirm page peeks')
  t.same((await app.inject(`/reset?token=${token}`)).json(), { email }, 'twice (mail scanners)')
  t.same((await app.inject({ method: 'POST', url: '/reset', body: { token } })).json(), { email })
  t.equal((await app.inject({ method: 'POST', url: '/reset', body: { token } })).statusCode, 404, 'used up')

  const log = lines.join('')
  t.ok(log.includes('otp: code verified') && log.includes('otp: token consumed'), 'the plugin logged (trace level)')
  t.ok(log.includes('"code":"[Redacted]"'), 'the body with the code was logged, redacted')
  t.ok(log.includes('/reset?token=[Redacted]'), 'the token in the URL was redacted')
  for (const secret of [...outbox.codes, bad, ...outbox.tokens]) t.notOk(log.includes(secret), 'not in the logs')
})

t.test('redactUrl replaces only the listed query parameters', async (t) => {
  t.equal(redactUrl('/a?token=x&b=1&code=2'), '/a?token=[Redacted]&b=1&code=[Redacted]')
  t.equal(redactUrl('/a?TOKEN=x&%74oken=y&tokens=z'), '/a?TOKEN=[Redacted]&%74oken=[Redacted]&tokens=z')
  t.equal(redactUrl('/a/b'), '/a/b')
  t.equal(redactUrl('/a?x=1&token'), '/a?x=1&token=[Redacted]')
})

t.test('otpLoggerOptions: a token in a mistyped link never reaches the log; error codes stay readable', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (s: string) => { lines.push(s) } }, ...otpLoggerOptions() } })
  t.teardown(() => app.close())
  await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
  await app.register(otpPlugin, { secret: randomBytes(32).toString('hex') })
  app.get('/fails', async () => { throw Object.assign(new Error('the database refused'), { code: 'ECONNREFUSED', statusCode: 500 }) })
  app.post('/echo', async (request) => { request.log.info({ body: request.body }, 'echo'); return { ok: true } })
  await app.ready()
  const { token } = await app.otp.createToken({ purpose: 'reset', subject: 'kim' })
  t.equal((await app.inject(`/auth/magik?token=${token}&x=1`)).statusCode, 404)
  t.equal((await app.inject('/fails')).statusCode, 500)
  await app.inject({ method: 'POST', url: '/echo', body: { code: '123456', nested: { code: '654321' } } })
  const log = lines.join('')
  t.match(log, /not found/, 'the 404 was logged')
  t.notOk(log.includes(token), 'the token is in no log line, the 404 message included')
  t.match(log, /magik\?token=\[Redacted\]&x=1/, 'the message quotes the URL with the token redacted')
  t.match(log, /"code":"ECONNREFUSED"/, 'err.code is logged as it is')
  t.notOk(log.includes('123456'), 'a code in a logged body is redacted')
})
