// One-time codes and tokens over HTTP: the suite's fastify.otp (OTP_IMPL=suite), or the
// seeds' way (OTP_IMPL=naive: the code in clear under a plain key, compared with ===).
import { randomBytes, randomInt, randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import otpPlugin from '../../plugins/otp.js'
import redisPlugin from '../../plugins/redis.js'
import { announce } from '../harness.js'

const app = Fastify({ logger: false })
await app.register(redisPlugin, { url: process.env.REDIS_URL as string, prefix: 'bench' })
await app.register(otpPlugin, { secret: randomBytes(32).toString('hex'), resendCooldown: 0, dailyCap: 10_000 })

if (process.env.OTP_IMPL === 'naive') {
  // Issue then verify one code, in clear, no attempt counting, not atomic.
  app.post('/code', async () => {
    const key = `naive:otp:${randomUUID()}`
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
    await app.redis.set(key, code, 'EX', 600)
    const ok = (await app.redis.get(key)) === code
    if (ok) await app.redis.del(key)
    return { ok }
  })
  app.post('/token', async () => {
    const token = randomBytes(32).toString('base64url')
    await app.redis.set(`naive:tok:${token}`, JSON.stringify({ s: 'u' }), 'EX', 3600)
    return { ok: (await app.redis.getdel(`naive:tok:${token}`)) !== null }
  })
} else {
  // Issue then verify one code for a fresh subject: two scripts.
  app.post('/code', async () => {
    const subject = randomUUID()
    const { code } = await app.otp.issue({ purpose: 'login', subject })
    return { ok: (await app.otp.verify({ purpose: 'login', subject, code })).status === 'ok' }
  })
  app.post('/token', async () => {
    const { token } = await app.otp.createToken({ purpose: 'reset', subject: randomUUID() })
    return { ok: (await app.otp.consumeToken(token, { purpose: 'reset' })) !== null }
  })
}

await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
