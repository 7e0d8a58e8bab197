import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import otpPlugin from '../plugins/otp.js'
import type { OtpPluginOptions } from '../plugins/otp.js'
import redisPlugin from '../plugins/redis.js'
import type { VerifyResult } from '../lib/otp/otp.js'
import { mac } from '../lib/otp/common.js'
import { otpKit } from './fixtures/otp.js'
import { clusterMode, freshPrefix, scanKeys, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const { raw, secret: SECRET, otpApp, keysHaveTtl } = await otpKit(t)

/** The same code with its last digit changed. */
function wrong (code: string): string {
  return code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10)
}

function count (results: VerifyResult[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of results) out[r.status] = (out[r.status] ?? 0) + 1
  return out
}

t.test('options: the secret is required and long, bad values fail at startup naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /"secret"/],
    [{ secret: 'x'.repeat(31) }, /"secret".*32 characters(?!.*xxxx)/],
    [{ secret: SECRET, codeTtl: '11m' }, /"codeTtl".*10 minutes/],
    [{ secret: SECRET, codeLength: 3 }, /"codeLength"/],
    [{ secret: SECRET, codeLength: 11 }, /"codeLength"/],
    [{ secret: SECRET, maxAttempts: 0 }, /"maxAttempts"/],
    [{ secret: SECRET, lockAfter: 101 }, /"lockAfter"/],
    [{ secret: SECRET, dailyCap: 0 }, /"dailyCap"/],
    [{ secret: SECRET, resendCooldown: 'soon' }, /"resendCooldown"/],
    [{ secret: SECRET, tokenTtl: '8d' }, /"tokenTtl"/],
    [{ secret: SECRET, connection: 'nope' }, /"nope"/]
  ]
  for (const [opts, message] of cases) {
    const app = Fastify()
    app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
    app.register(otpPlugin, opts as unknown as OtpPluginOptions)
    await t.rejects(async () => { await app.ready() }, { code: /FRS_(INVALID_(OPTION|DURATION)|UNKNOWN_CONNECTION)/, message }, JSON.stringify(opts))
    await app.close()
  }
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(otpPlugin, { secret: SECRET })
  await t.rejects(async () => { await app.ready() }, /fastify-redis-suite\/redis/, 'needs the core plugin')
})

t.test('issue: digits of the asked length, an expiry of at most 10 minutes', async (t) => {
  const app = await otpApp(t, { resendCooldown: 0 })
  const before = Date.now()
  const six = await app.otp.issue({ purpose: 'login', subject: 'a@example.com' })
  t.match(six.code, /^\d{6}$/)
  const ttl = six.expiresAt.getTime() - before
  t.ok(ttl > 590_000 && ttl < 610_000, `default expiry in 10 minutes (${ttl}ms)`)
  t.match((await app.otp.issue({ purpose: 'login', subject: 'b', length: 10, ttl: '2m' })).code, /^\d{10}$/)
  t.match((await app.otp.issue({ purpose: 'login', subject: 'c', length: 4 })).code, /^\d{4}$/)
  // Per-call inputs are the caller's: a 400 naming the field, not a startup option error.
  const input = (field: string, why = /./) => ({ code: 'FRS_OTP_INVALID_INPUT', statusCode: 400, field, message: new RegExp(`^Invalid ${field}: ${why.source}`) })
  await t.rejects(app.otp.issue({ purpose: 'login', subject: 'd', ttl: '11m' }), input('ttl', /.*10 minutes/))
  await t.rejects(app.otp.issue({ purpose: 'login', subject: 'd', length: 11 }), input('length'))
  await t.rejects(app.otp.issue({ purpose: 'login', subject: 'd', maxAttempts: 0 }), input('maxAttempts'))
  await t.rejects(app.otp.issue({ purpose: 'log in', subject: 'd' }), input('purpose'))
  await t.rejects(app.otp.issue({ purpose: 'login', subject: '' }), input('subject'))
  // crypto.randomInt: every digit shows up, leading zeros are kept.
  const digits = new Set<string>()
  for (let i = 0; i < 40; i++) for (const d of (await app.otp.issue({ purpose: 'spread', subject: `s${i}` })).code) digits.add(d)
  t.equal(digits.size, 10, 'all ten digits appear')
  await keysHaveTtl(t, app.redisSuite.prefix)
})

t.test('50 parallel verifies of the right code over two instances: exactly one ok', async (t) => {
  const prefix = freshPrefix()
  const a = await otpApp(t, {}, prefix)
  const b = await otpApp(t, {}, prefix)
  const { code } = await a.otp.issue({ purpose: 'login', subject: 'u1' })
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    (i % 2 === 0 ? a : b).otp.verify({ purpose: 'login', subject: 'u1', code })))
  t.same(count(results), { ok: 1, expired: 49 }, 'a code works once')
  t.same(await a.otp.verify({ purpose: 'login', subject: 'u1', code }), { status: 'expired' })
  await keysHaveTtl(t, prefix)
})

t.test('100 parallel wrong guesses: at most maxAttempts are evaluated, then the code is gone', async (t) => {
  const app = await otpApp(t, { maxAttempts: 5 })
  const { code } = await app.otp.issue({ purpose: 'login', subject: 'u2' })
  const results = await Promise.all(Array.from({ length: 100 }, () => app.otp.verify({ purpose: 'login', subject: 'u2', code: wrong(code) })))
  t.same(count(results), { invalid: 5, expired: 95 })
  const left = results.flatMap((r) => r.status === 'invalid' ? [r.attemptsLeft] : []).sort()
  t.same(left, [0, 1, 2, 3, 4], 'each evaluated guess counted once')
  t.same(await app.otp.verify({ purpose: 'login', subject: 'u2', code }), { status: 'expired' }, 'the right code is dead too')
})

t.test('100 parallel wrong guesses with a low lockAfter: the subject is locked', async (t) => {
  const app = await otpApp(t, { maxAttempts: 5, lockAfter: 3, lockFor: '10m' })
  const { code } = await app.otp.issue({ purpose: 'login', subject: 'u3' })
  const results = await Promise.all(Array.from({ length: 100 }, () => app.otp.verify({ purpose: 'login', subject: 'u3', code: wrong(code) })))
  t.same(count(results), { invalid: 2, locked: 98 }, 'the third failure locks; nothing more is evaluated')
  for (const r of results) if (r.status === 'locked') t.ok(r.retryAfter > 590 && r.retryAfter <= 600, 'retryAfter in seconds')
  t.equal((await app.otp.verify({ purpose: 'login', subject: 'u3', code })).status, 'locked', 'even the right code')
  await t.rejects(app.otp.issue({ purpose: 'other', subject: 'u3' }), { code: 'FRS_OTP_RATE_LIMITED', statusCode: 429, reason: 'locked' })
  t.equal((await app.otp.verify({ purpose: 'login', subject: 'someone-else', code })).status, 'expired', 'other subjects are not locked')
  await keysHaveTtl(t, app.redisSuite.prefix)
})

t.test('a code is rejected for another purpose or subject, and still works for its own', async (t) => {
  const app = await otpApp(t)
  const { code } = await app.otp.issue({ purpose: 'login', subject: 'alice' })
  t.same(await app.otp.verify({ purpose: 'reset', subject: 'alice', code }), { status: 'expired' })
  t.same(await app.otp.verify({ purpose: 'login', subject: 'bob', code }), { status: 'expired' })
  t.same(await app.otp.verify({ purpose: 'login', subject: 'Alice', code }), { status: 'expired' }, 'subjects are exact')
  await t.rejects(app.otp.verify({ purpose: 'login', subject: 'alice', code: Number(code) }), { code: 'FRS_OTP_INVALID_INPUT', field: 'code' }, 'a non-string code is refused (400)')
  t.same(await app.otp.verify({ purpose: 'login', subject: 'alice', code: wrong(code) }), { status: 'invalid', attemptsLeft: 4 }, 'the refusal cost no attempt')
  t.same(await app.otp.verify({ purpose: 'login', subject: 'alice', code }), { status: 'ok' })
})

t.test('a resend replaces the code and keeps the attempts spent', async (t) => {
  const app = await otpApp(t, { resendCooldown: 0, maxAttempts: 5 })
  const s = { purpose: 'login', subject: 'carol' }
  const first = await app.otp.issue(s)
  for (const left of [4, 3, 2]) t.same(await app.otp.verify({ ...s, code: wrong(first.code) }), { status: 'invalid', attemptsLeft: left })
  let second = await app.otp.issue(s)
  while (second.code === first.code) second = await app.otp.issue(s)
  t.same(await app.otp.verify({ ...s, code: first.code }), { status: 'invalid', attemptsLeft: 1 }, 'the old code is replaced; attempts carried over')
  t.same(await app.otp.verify({ ...s, code: wrong(second.code) }), { status: 'invalid', attemptsLeft: 0 })
  t.same(await app.otp.verify({ ...s, code: second.code }), { status: 'expired' }, 'attempts ran out across the resend')
})

t.test('consecutive failures survive resends, reset on success, and lock the subject for lockFor', async (t) => {
  const app = await otpApp(t, { resendCooldown: 0, maxAttempts: 3, lockAfter: 4, lockFor: '1500ms' })
  const s = { purpose: 'login', subject: 'dave' }
  let { code } = await app.otp.issue(s)
  await app.otp.verify({ ...s, code: wrong(code) })
  await app.otp.verify({ ...s, code: wrong(code) })
  t.same(await app.otp.verify({ ...s, code }), { status: 'ok' }, 'success resets the failure count')
  ;({ code } = await app.otp.issue(s))
  for (const left of [2, 1, 0]) t.same(await app.otp.verify({ ...s, code: wrong(code) }), { status: 'invalid', attemptsLeft: left })
  ;({ code } = await app.otp.issue(s))
  const locked = await app.otp.verify({ ...s, code: wrong(code) })
  t.same(locked, { status: 'locked', retryAfter: 2 }, 'the fourth consecutive failure, over two codes, locks')
  t.equal((await app.otp.verify({ ...s, code })).status, 'locked')
  const err = await app.otp.issue(s).catch((e: unknown) => e) as { code: string, retryAfter: number, message: string }
  t.equal(err.code, 'FRS_OTP_RATE_LIMITED')
  t.ok(err.retryAfter >= 1 && err.retryAfter <= 2)
  // The lock ends lockFor after the last failure.
  const deadline = Date.now() + 5000
  let issued: { code: string } | undefined
  while (issued === undefined && Date.now() < deadline) {
    issued = await app.otp.issue(s).catch(() => undefined)
    if (issued === undefined) await sleep(50)
  }
  t.ok(issued, 'issuing works again after the lock')
  t.same(await app.otp.verify({ ...s, code: issued?.code }), { status: 'ok' })
})

t.test('expiry: a code stops working after its ttl', async (t) => {
  const app = await otpApp(t)
  const s = { purpose: 'login', subject: 'erin' }
  const { code } = await app.otp.issue({ ...s, ttl: 300 })
  t.equal((await app.otp.verify({ ...s, code: wrong(code) })).status, 'invalid', 'alive at first')
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && (await scanKeys(raw, app.redisSuite.prefix)).some((k) => k.includes(':code:'))) await sleep(25)
  t.same(await app.otp.verify({ ...s, code }), { status: 'expired' })
})

t.test('sending limits: resend cooldown per purpose, daily cap per subject, with retryAfter', async (t) => {
  const app = await otpApp(t, { resendCooldown: '60s', dailyCap: 3 })
  await app.otp.issue({ purpose: 'login', subject: 'fay' })
  const err = await app.otp.issue({ purpose: 'login', subject: 'fay' }).catch((e: unknown) => e) as Record<string, unknown>
  t.match(err, { code: 'FRS_OTP_RATE_LIMITED', statusCode: 429, reason: 'cooldown', message: /retry in 60 seconds/ })
  t.ok(err.retryAfter === 60 || err.retryAfter === 59, `retryAfter ${err.retryAfter}`)
  await app.otp.issue({ purpose: 'verify-email', subject: 'fay' })
  await app.otp.issue({ purpose: 'verify-phone', subject: 'fay' })
  const cap = await app.otp.issue({ purpose: 'reset', subject: 'fay' }).catch((e: unknown) => e) as Record<string, unknown>
  t.match(cap, { code: 'FRS_OTP_RATE_LIMITED', reason: 'daily-cap' })
  t.ok(Number(cap.retryAfter) > 86_000 && Number(cap.retryAfter) <= 86_400, `retry in about a day (${cap.retryAfter}s)`)
  await app.otp.issue({ purpose: 'reset', subject: 'gus' })

  const burst = await otpApp(t, { resendCooldown: 0, dailyCap: 10 })
  const settled = await Promise.allSettled(Array.from({ length: 100 }, () => burst.otp.issue({ purpose: 'login', subject: 'hal' })))
  t.equal(settled.filter((r) => r.status === 'fulfilled').length, 10, '100 parallel sends: exactly dailyCap succeed')
  await keysHaveTtl(t, app.redisSuite.prefix)
})

t.test('no code and no subject readable in clear anywhere in Redis; every key has a TTL', async (t) => {
  const app = await otpApp(t, { resendCooldown: 0 })
  const subjects = ['ivy@example.com', '+15551234567', 'user-42']
  const codes: string[] = []
  for (const subject of subjects) {
    for (const purpose of ['login', 'reset']) {
      const { code } = await app.otp.issue({ purpose, subject, length: 10 })
      codes.push(code)
      await app.otp.verify({ purpose, subject, code: wrong(code) })
    }
  }
  const prefix = app.redisSuite.prefix
  const keys = await scanKeys(raw, prefix)
  t.ok(keys.length >= 6 + 2 * subjects.length, `${keys.length} keys`)
  let dump = keys.join('\n')
  for (const key of keys) {
    const type = await raw.type(key)
    if (type === 'hash') dump += JSON.stringify(await raw.hgetall(key))
    else if (type === 'string') dump += String(await raw.get(key))
    else t.fail(`unexpected ${type} at ${key}`)
  }
  for (const code of codes) t.notOk(dump.includes(code), 'code not in clear')
  for (const subject of subjects) t.notOk(dump.includes(subject), 'subject not in clear')
  await keysHaveTtl(t, prefix)
})

t.test('nothing sent to Redis holds a code or a token in clear (MONITOR)', { skip: clusterMode && 'MONITOR is per node' }, async (t) => {
  const app = await otpApp(t, { resendCooldown: 0 })
  const monitor = await (raw as Redis).monitor()
  t.teardown(() => monitor.disconnect())
  const seen: string[] = []
  monitor.on('monitor', (_time: string, args: string[]) => { seen.push(args.join(' ')) })
  const marker = async (name: string): Promise<void> => {
    const key = app.redisSuite.keyspace('otp').key(name)
    const deadline = Date.now() + 3000
    while (!seen.some((c) => c.includes(name)) && Date.now() < deadline) {
      await app.redis.set(key, '1', 'PX', 1000)
      await sleep(10)
    }
  }
  await marker('start-marker') // MONITOR streams once Redis has set it up
  const secrets: string[] = []
  const { code } = await app.otp.issue({ purpose: 'login', subject: 'mon', length: 10 })
  secrets.push(code)
  await app.otp.verify({ purpose: 'login', subject: 'mon', code: wrong(code) })
  secrets.push(wrong(code))
  await app.otp.verify({ purpose: 'login', subject: 'mon', code })
  const { token } = await app.otp.createToken({ purpose: 'reset', subject: 'mon' })
  secrets.push(token)
  await app.otp.peekToken(token, { purpose: 'reset' })
  await app.otp.consumeToken(token, { purpose: 'reset' })
  await marker('end-marker')
  t.ok(seen.some((c) => c.includes('frsOtp') || c.includes('evalsha') || c.includes('eval')), `${seen.length} commands seen`)
  t.ok(seen.some((c) => /getdel/i.test(c)), 'the consume was seen')
  for (const secret of secrets) t.notOk(seen.some((c) => c.includes(secret)), 'never on the wire')
})

t.test('the HMAC input is length-prefixed: fields cannot shift into each other', async (t) => {
  const s = 'k'.repeat(32)
  t.not(mac(s, 'l', 'ab', 'c'), mac(s, 'l', 'a', 'bc'))
  t.not(mac(s, 'l', 'a|b', 'c'), mac(s, 'l', 'a', 'b|c'))
  t.not(mac(s, 'l', 'a', ''), mac(s, 'l', 'a'))
  t.equal(mac(s, 'l', 'a', 'b'), mac(s, 'l', 'a', 'b'))
  t.not(mac(s, 'l', 'a'), mac('j'.repeat(32), 'l', 'a'), 'keyed by the secret')
})
