import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { otpKit } from './fixtures/otp.js'
import { freshPrefix, scanKeys } from './fixtures/redis.js'

const { raw, otpApp, keysHaveTtl } = await otpKit(t)

t.test('createToken: 32 random bytes in base64url; consumeToken gives the data back once', async (t) => {
  const app = await otpApp(t)
  const before = Date.now()
  const { token, expiresAt } = await app.otp.createToken({ purpose: 'reset', subject: 'alice', data: { userId: 7 } })
  t.match(token, /^[A-Za-z0-9_-]{43}$/)
  t.equal(Buffer.from(token, 'base64url').length, 32)
  t.ok(Math.abs(expiresAt.getTime() - before - 3_600_000) < 5000, 'default ttl 1h')
  const other = await app.otp.createToken({ purpose: 'reset', subject: 'alice' })
  t.not(other.token, token)
  t.same(await app.otp.consumeToken(token, { purpose: 'reset' }), { subject: 'alice', data: { userId: 7 } })
  t.equal(await app.otp.consumeToken(token, { purpose: 'reset' }), null, 'once only')
  t.same(await app.otp.consumeToken(other.token, { purpose: 'reset' }), { subject: 'alice', data: null })
  await t.rejects(app.otp.createToken({ purpose: 'reset', subject: 'a', ttl: '8d' }), { code: 'FRS_OTP_INVALID_INPUT', statusCode: 400, message: /^Invalid ttl: longer than maxTokenTtl/ })
  await t.rejects(app.otp.createToken({ purpose: 'reset', subject: 'a', data: { n: 1n } }), { code: 'FRS_OTP_INVALID_INPUT', message: /^Invalid data: / })
  await keysHaveTtl(t, app.redisSuite.prefix)
})

t.test('a token is consumed by exactly one of 50 parallel consumers on two instances', async (t) => {
  const prefix = freshPrefix()
  const a = await otpApp(t, {}, prefix)
  const b = await otpApp(t, {}, prefix)
  for (let round = 0; round < 3; round++) {
    const { token } = await a.otp.createToken({ purpose: 'magic', subject: `u${round}`, data: round })
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).otp.consumeToken(token, { purpose: 'magic' })))
    const winners = results.filter((r) => r !== null)
    t.equal(winners.length, 1, `round ${round}: one winner`)
    t.same(winners[0], { subject: `u${round}`, data: round })
  }
})

t.test('peekToken does not consume; other purposes and malformed tokens find nothing', async (t) => {
  const app = await otpApp(t)
  const { token } = await app.otp.createToken({ purpose: 'verify-email', subject: 'bob@example.com', data: 'x' })
  for (let i = 0; i < 3; i++) t.same(await app.otp.peekToken(token, { purpose: 'verify-email' }), { subject: 'bob@example.com', data: 'x' })
  t.equal(await app.otp.consumeToken(token, { purpose: 'reset' }), null, 'a token works only for its purpose')
  t.equal(await app.otp.peekToken(token, { purpose: 'reset' }), null)
  for (const bad of [token.slice(1), token + 'A', '', 42, null, token.replace(/.$/, '*')]) {
    await t.rejects(app.otp.consumeToken(bad, { purpose: 'verify-email' }), { code: 'FRS_OTP_INVALID_INPUT', field: 'token' }, `malformed ${JSON.stringify(bad)}`)
  }
  t.same(await app.otp.consumeToken(token, { purpose: 'verify-email' }), { subject: 'bob@example.com', data: 'x' }, 'wrong-purpose attempts did not burn it')
  t.equal(await app.otp.peekToken(token, { purpose: 'verify-email' }), null, 'gone after consume')
})

t.test('revokeAll invalidates every outstanding token of the subject and purpose, and only those', async (t) => {
  const prefix = freshPrefix()
  const app = await otpApp(t, {}, prefix)
  const other = await otpApp(t, {}, prefix)
  const mk = (purpose: string, subject: string) => app.otp.createToken({ purpose, subject }).then((r) => r.token)
  const revoked = await Promise.all([mk('reset', 'carol'), mk('reset', 'carol'), mk('reset', 'carol')])
  const bobs = await mk('reset', 'bob')
  const carolsEmail = await mk('verify-email', 'carol')
  await other.otp.revokeAll({ subject: 'carol', purpose: 'reset' })
  for (const token of revoked) {
    t.equal(await app.otp.peekToken(token, { purpose: 'reset' }), null, 'revoked (peek)')
    t.equal(await app.otp.consumeToken(token, { purpose: 'reset' }), null, 'revoked (consume)')
  }
  t.same(await app.otp.peekToken(bobs, { purpose: 'reset' }), { subject: 'bob', data: null }, 'other subject untouched')
  t.same(await app.otp.peekToken(carolsEmail, { purpose: 'verify-email' }), { subject: 'carol', data: null }, 'other purpose untouched')
  const fresh = await mk('reset', 'carol')
  t.same(await app.otp.consumeToken(fresh, { purpose: 'reset' }), { subject: 'carol', data: null }, 'a token made after revokeAll works')
  await app.otp.revokeAll({ subject: 'nobody', purpose: 'reset' })
  await keysHaveTtl(t, prefix)
})

t.test('the revocation generation outlives every token that depends on it', async (t) => {
  const app = await otpApp(t)
  await app.otp.createToken({ purpose: 'reset', subject: 'dan', ttl: '2d' })
  await app.otp.createToken({ purpose: 'reset', subject: 'dan', ttl: '1m' })
  await app.otp.revokeAll({ subject: 'dan', purpose: 'reset' })
  const keys = await scanKeys(raw, app.redisSuite.prefix)
  const gen = keys.find((k) => k.includes(':gen:')) as string
  const tokens = keys.filter((k) => k.includes(':tok:'))
  t.equal(tokens.length, 2)
  const genTtl = await raw.pttl(gen)
  for (const k of tokens) t.ok(genTtl > await raw.pttl(k), 'generation key lives longer than the token')
})

t.test('a token expires after its ttl', async (t) => {
  const app = await otpApp(t)
  const { token } = await app.otp.createToken({ purpose: 'magic', subject: 'eve', ttl: 300 })
  t.ok(await app.otp.peekToken(token, { purpose: 'magic' }), 'alive at first')
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && (await scanKeys(raw, app.redisSuite.prefix)).some((k) => k.includes(':tok:'))) await sleep(25)
  t.equal(await app.otp.consumeToken(token, { purpose: 'magic' }), null)
})

t.test('no token readable in clear anywhere in Redis; stored under its SHA-256; every key has a TTL', async (t) => {
  const app = await otpApp(t)
  const tokens: string[] = []
  for (const subject of ['fred@example.com', 'gina@example.com']) {
    for (const purpose of ['reset', 'magic']) tokens.push((await app.otp.createToken({ purpose, subject, data: { note: 'hello' } })).token)
  }
  await app.otp.revokeAll({ subject: 'fred@example.com', purpose: 'magic' })
  const keys = await scanKeys(raw, app.redisSuite.prefix)
  let dump = keys.join('\n')
  for (const key of keys) dump += '\n' + String(await raw.get(key))
  for (const token of tokens) {
    t.notOk(dump.includes(token), 'token not in clear')
    t.notOk(dump.includes(Buffer.from(token, 'base64url').toString('hex')), 'nor its bytes in hex')
    const digest = createHash('sha256').update(token).digest('base64url')
    t.equal(keys.filter((k) => k.endsWith(digest)).length, 1, 'one key named by its SHA-256')
  }
  t.notOk(keys.join('\n').includes('example.com'), 'no subject in key names')
  await keysHaveTtl(t, app.redisSuite.prefix)
})

t.test('a new secret does not bring revoked tokens back', async (t) => {
  const prefix = freshPrefix()
  const before = await otpApp(t, {}, prefix)
  const after = await otpApp(t, { secret: randomBytes(32).toString('base64') }, prefix)
  const { token } = await before.otp.createToken({ purpose: 'reset', subject: 'hank' })
  const kept = await before.otp.createToken({ purpose: 'reset', subject: 'hank', data: 1 })
  await before.otp.revokeAll({ subject: 'hank', purpose: 'reset' })
  const live = await before.otp.createToken({ purpose: 'reset', subject: 'hank', data: 2 })
  t.equal(await after.otp.consumeToken(token, { purpose: 'reset' }), null, 'still revoked under the new secret')
  t.equal(await after.otp.peekToken(kept.token, { purpose: 'reset' }), null)
  t.same(await after.otp.consumeToken(live.token, { purpose: 'reset' }), { subject: 'hank', data: 2 }, 'a live token still works')
})
