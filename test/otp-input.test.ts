// Per-call inputs of the OTP calls come from requests: a malformed one is the client's fault,
// a 400 FRS_OTP_INVALID_INPUT naming the field, never a 500 and never an "option". Tested over
// HTTP with the README's OTP routes as a user writes them, plus token routes that pass request
// values straight through, and a seeded hostile-input run: FUZZ_SEED=<n> replays it,
// FUZZ_REQUESTS=<n> changes its length.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyReply, FastifyRequest, LightMyRequestResponse } from 'fastify'
import otpPlugin from '../plugins/otp.js'
import redisPlugin from '../plugins/redis.js'
import { otpLoggerOptions } from '../lib/otp/logging.js'
import { errors } from '../lib/core/index.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'
import { draws, encodeLoosely, fuzzSeed } from './fixtures/prng.js'

const redis = await testRedis()

interface Outbox { codes: Map<string, string>, tokens: string[] }

/** The README's OTP example (its two routes verbatim), plus token and purpose routes that validate only that the body is an object. */
async function readmeApp (t: { teardown: (fn: () => unknown) => void }, outbox: Outbox, otp: Record<string, unknown> = {}): Promise<FastifyInstance> {
  const mailer = { send: async (to: string, text: string) => { outbox.codes.set(to.toLowerCase(), text.replace('Your code: ', '')) } }
  const startSession = async (_request: FastifyRequest, _reply: FastifyReply) => ({ ok: true as const })

  const app = Fastify({ logger: { level: 'silent', ...otpLoggerOptions() } })
  t.teardown(() => app.close())
  await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
  await app.register(otpPlugin, { secret: randomBytes(32).toString('hex'), resendCooldown: 0, dailyCap: 10_000, ...otp })

  // --- from README.md, "One-time codes and link tokens" ---
  const email = { type: 'string' } as const
  const sendBody = { type: 'object', required: ['email'], properties: { email } } as const
  const verifyBody = { type: 'object', required: ['email', 'code'], properties: { email, code: { type: 'string' } } } as const

  app.post<{ Body: { email: string } }>('/login/code', { schema: { body: sendBody } }, async (request) => {
    const { code } = await app.otp.issue({ purpose: 'login', subject: request.body.email.toLowerCase() })
    await mailer.send(request.body.email, `Your code: ${code}`) // never log it
    return { sent: true }
  })

  app.post<{ Body: { email: string, code: string } }>('/login/verify', { schema: { body: verifyBody } }, async (request, reply) => {
    const result = await app.otp.verify({ purpose: 'login', subject: request.body.email.toLowerCase(), code: request.body.code })
    switch (result.status) {
      case 'ok': return startSession(request, reply)
      case 'invalid': return reply.code(400).send({ code: 'WRONG_CODE', attemptsLeft: result.attemptsLeft })
      case 'expired': return reply.code(400).send({ code: 'CODE_EXPIRED', message: 'request a new code' })
      case 'locked': return reply.code(429).header('retry-after', result.retryAfter).send({ code: 'LOCKED', retryAfter: result.retryAfter })
    }
  })
  // --- end of the README's routes ---

  // Routes that check only that the body is an object: any JSON value reaches the plugin.
  const object = { schema: { body: { type: 'object' } } } as const
  type Loose = Record<string, unknown>
  app.post<{ Body: Loose }>('/reset/request', object, async (request) => {
    const { token } = await app.otp.createToken({ purpose: 'reset', subject: request.body.email as string, data: request.body.data })
    outbox.tokens.push(token)
    return { sent: true }
  })
  app.get<{ Querystring: Loose }>('/reset', async (request, reply) => {
    const found = await app.otp.peekToken(request.query.token, { purpose: 'reset' })
    return found === null ? reply.code(404).send({ code: 'NO_SUCH_TOKEN' }) : found
  })
  app.post<{ Body: Loose }>('/reset', object, async (request, reply) => {
    const found = await app.otp.consumeToken(request.body.token, { purpose: 'reset' })
    return found === null ? reply.code(404).send({ code: 'NO_SUCH_TOKEN' }) : found
  })
  app.post<{ Body: Loose }>('/reset/revoke', object, async (request) => {
    await app.otp.revokeAll({ purpose: 'reset', subject: request.body.email as string })
    return { revoked: true }
  })
  // The purpose from the URL: a bad one is the client's input too.
  app.post<{ Params: { purpose: string }, Body: Loose }>('/codes/:purpose', object, async (request) => {
    const { code } = await app.otp.issue({ purpose: request.params.purpose, subject: request.body.email as string })
    outbox.codes.set(`${request.params.purpose}:${String(request.body.email)}`, code)
    return { sent: true }
  })
  app.post<{ Params: { purpose: string }, Body: Loose }>('/codes/:purpose/verify', object, async (request) => {
    return app.otp.verify({ purpose: request.params.purpose, subject: request.body.email as string, code: request.body.code })
  })
  await app.ready()
  return app
}

const post = (app: FastifyInstance, url: string, body: unknown) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })

/** A 400 FRS_OTP_INVALID_INPUT naming `field`, that neither says "option" nor quotes `sent`. */
function isInvalidInput (t: Test, res: LightMyRequestResponse, field: string, what: string, sent?: string) {
  t.equal(res.statusCode, 400, `${what}: 400`)
  const body = res.json<{ code: string, message: string }>()
  t.equal(body.code, 'FRS_OTP_INVALID_INPUT', `${what}: its own code`)
  t.match(body.message, new RegExp(`^Invalid ${field}: `), `${what}: names ${field}`)
  t.notMatch(body.message, /option/i, `${what}: no "option"`)
  if (sent !== undefined && sent.length > 3) t.notOk(body.message.includes(sent), `${what}: the value is not quoted`)
}

t.test('the README routes: an empty or 2,000-character email is a 400 naming subject', async (t) => {
  const app = await readmeApp(t, { codes: new Map(), tokens: [] })
  for (const email of ['', 'a'.repeat(2000) + '@example.com', 'x'.repeat(100_000), '\ud800@example.com']) {
    const what = `email of ${email.length} characters`
    isInvalidInput(t, await post(app, '/login/code', { email }), 'subject', `send, ${what}`, email)
    isInvalidInput(t, await post(app, '/login/verify', { email, code: '123456' }), 'subject', `verify, ${what}`, email)
  }
  t.equal((await post(app, '/login/code', { email: 'a'.repeat(1012) + '@example.com' })).statusCode, 200, '1024 characters are fine')
})

t.test('a malformed code is a 400 that costs no attempt; a code of digits is a counted guess', async (t) => {
  const outbox: Outbox = { codes: new Map(), tokens: [] }
  const app = await readmeApp(t, outbox, { maxAttempts: 3 })
  const email = 'ann@example.com'
  t.equal((await post(app, '/login/code', { email })).statusCode, 200)
  const code = outbox.codes.get(email) as string
  const garbage = ['', ' ' + code, code + ' ', code.replace(/^./, 'a'), '１２３４５６', '12e4', '0x1234', '123', '12345678901', 'x'.repeat(100_000), `${code}\u0000`]
  for (let round = 0; round < 3; round++) { // more refusals than maxAttempts
    for (const bad of garbage) isInvalidInput(t, await post(app, '/login/verify', { email, code: bad }), 'code', `code ${JSON.stringify(bad.slice(0, 12))}`, bad)
  }
  const wrong = code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10)
  t.same((await post(app, '/login/verify', { email, code: wrong })).json(), { code: 'WRONG_CODE', attemptsLeft: 2 }, 'no attempt was burnt by garbage')
  t.same((await post(app, '/login/verify', { email, code: '1234' })).json(), { code: 'WRONG_CODE', attemptsLeft: 1 }, 'digits of another length are a counted guess')
  t.same((await post(app, '/login/verify', { email, code })).json(), { ok: true }, 'the right code still works')
  // The limit holds: garbage never reaches Redis, and every well-formed guess is counted.
  await post(app, '/login/code', { email: 'bo@example.com' })
  const bos = outbox.codes.get('bo@example.com') as string
  const guesses = ['000000', '111111', '222222', '333333'].filter((g) => g !== bos)
  const answers = []
  for (const g of guesses.slice(0, 3)) answers.push((await post(app, '/login/verify', { email: 'bo@example.com', code: g })).json<{ code: string }>().code)
  t.same(answers, ['WRONG_CODE', 'WRONG_CODE', 'WRONG_CODE'])
  t.same((await post(app, '/login/verify', { email: 'bo@example.com', code: bos })).json(), { code: 'CODE_EXPIRED', message: 'request a new code' }, 'gone after maxAttempts')
})

t.test('a lone surrogate is refused: "\\ud800" and "\\ufffd" are not one subject', async (t) => {
  const outbox: Outbox = { codes: new Map(), tokens: [] }
  const app = await readmeApp(t, outbox)
  t.equal((await post(app, '/login/code', { email: '\ufffd' })).statusCode, 200)
  const code = outbox.codes.get('\ufffd') as string
  isInvalidInput(t, await post(app, '/login/verify', { email: '\ud800', code }), 'subject', 'a lone high surrogate')
  isInvalidInput(t, await post(app, '/reset/request', { email: 'a\udc00b' }), 'subject', 'a lone low surrogate')
  t.same((await post(app, '/login/verify', { email: '\ufffd', code })).json(), { ok: true }, 'the real subject still verifies')
})

t.test('tokens: a malformed token is a 400 naming token; bad data a 400 naming data', async (t) => {
  const outbox: Outbox = { codes: new Map(), tokens: [] }
  const app = await readmeApp(t, outbox)
  t.equal((await post(app, '/reset/request', { email: 'cy', data: { userId: 7 } })).statusCode, 200)
  const token = outbox.tokens[0] as string
  const tokenCases: Array<[string, unknown]> = [['an array', [token, token]], ['an object', { toString: token }], ['a number', 42], ['null', null], ['100 kB', 'A'.repeat(100_000)], ['one short', token.slice(1)], ['a bad character', token.replace(/.$/, '=')]]
  for (const [what, bad] of tokenCases) isInvalidInput(t, await post(app, '/reset', { token: bad }), 'token', `consume, ${what}`, typeof bad === 'string' ? bad : undefined)
  isInvalidInput(t, await app.inject(`/reset?token=${token}&token=${token}`), 'token', 'peek, ?token twice (an array)')
  isInvalidInput(t, await app.inject('/reset'), 'token', 'peek, no token')
  t.equal((await app.inject(`/reset?token=${'B'.repeat(43)}`)).statusCode, 404, 'a well-formed unknown token finds nothing')
  t.same((await post(app, '/reset', { token })).json(), { subject: 'cy', data: { userId: 7 } }, 'the token was not used up by the refusals')

  isInvalidInput(t, await post(app, '/reset/request', { email: 'cy', data: 'x'.repeat(100_000) }), 'data', 'data of 100 kB')
  isInvalidInput(t, await post(app, '/reset/request', { email: 'cy', data: { a: 'é'.repeat(70_000) } }), 'data', 'data over 64 KiB')
  isInvalidInput(t, await post(app, '/reset/revoke', { email: ['cy'] }), 'subject', 'revokeAll, an array')
  isInvalidInput(t, await post(app, '/reset/revoke', { email: 5 }), 'subject', 'revokeAll, a number')
  isInvalidInput(t, await post(app, '/reset/request', { email: { toString: 'cy' } }), 'subject', 'createToken, an object')
})

t.test('a purpose from the request: a bad one is a 400 naming purpose', async (t) => {
  const outbox: Outbox = { codes: new Map(), tokens: [] }
  const app = await readmeApp(t, outbox)
  for (const purpose of ['log%20in', 'x'.repeat(65), '%C3%A9', '__proto__%3F', '%F0%9F%98%80']) {
    isInvalidInput(t, await post(app, `/codes/${purpose}`, { email: 'di' }), 'purpose', `issue, purpose ${purpose.slice(0, 12)}`)
    isInvalidInput(t, await post(app, `/codes/${purpose}/verify`, { email: 'di', code: '123456' }), 'purpose', `verify, purpose ${purpose.slice(0, 12)}`)
  }
  t.equal((await post(app, '/codes/verify-phone', { email: 'di' })).statusCode, 200)
  t.same((await post(app, '/codes/verify-phone/verify', { email: 'di', code: outbox.codes.get('verify-phone:di') })).json(), { status: 'ok' })
})

t.test('direct calls with hostile types: a 400 naming the field, before Redis', async (t) => {
  const outbox: Outbox = { codes: new Map(), tokens: [] }
  const app = await readmeApp(t, outbox, { maxAttempts: 2 })
  const { code } = await app.otp.issue({ purpose: 'login', subject: 'eve' })
  const sneaky = { toString: () => code, valueOf: () => Number(code), [Symbol.toPrimitive]: () => code }
  const input = (field: string) => ({ code: 'FRS_OTP_INVALID_INPUT', statusCode: 400, field, message: new RegExp(`^Invalid ${field}: `) })
  const subjects: unknown[] = [sneaky, ['eve'], null, undefined, 5, Object('eve'), 'x'.repeat(100_000), '\udfff', Symbol('eve')]
  for (const subject of subjects) {
    await t.rejects(app.otp.issue({ purpose: 'login', subject } as never), input('subject'))
    await t.rejects(app.otp.verify({ purpose: 'login', subject, code } as never), input('subject'))
    await t.rejects(app.otp.createToken({ purpose: 'reset', subject } as never), input('subject'))
    await t.rejects(app.otp.revokeAll({ purpose: 'reset', subject } as never), input('subject'))
  }
  for (const bad of [sneaky, [code], null, undefined, Number(code), Object(code), 'x'.repeat(100_000), `${code}\ud800`]) {
    await t.rejects(app.otp.verify({ purpose: 'login', subject: 'eve', code: bad }), input('code'))
  }
  for (const purpose of [sneaky, ['login'], null, 1, 'login\n', '']) {
    await t.rejects(app.otp.verify({ purpose, subject: 'eve', code } as never), input('purpose'))
    await t.rejects(app.otp.consumeToken('A'.repeat(43), { purpose } as never), input('purpose'))
  }
  for (const whole of [null, undefined, 5, 'eve']) {
    await t.rejects(app.otp.verify(whole as never), input('purpose'), `verify(${String(whole)})`)
    await t.rejects(app.otp.revokeAll(whole as never), input('purpose'), `revokeAll(${String(whole)})`)
    await t.rejects(app.otp.consumeToken('A'.repeat(43), whole as never), input('purpose'), `consumeToken(…, ${String(whole)})`)
  }
  await t.rejects(app.otp.issue({ purpose: 'login', subject: 'eve', ttl: { toString: () => '1m' } } as never), input('ttl'))
  await t.rejects(app.otp.issue({ purpose: 'login', subject: 'eve', length: '6' } as never), input('length'))
  t.same(await app.otp.verify({ purpose: 'login', subject: 'eve', code }), { status: 'ok' }, 'none of it cost an attempt')

  // data: prototype keys, as JSON.parse makes them (own properties), are refused; so is what JSON cannot hold.
  const datas: unknown[] = [JSON.parse('{"__proto__":{"admin":true}}'), JSON.parse('{"a":[{"constructor":{"prototype":{"admin":true}}}]}'), { n: 1n }, () => 1, Symbol('x'), { toJSON: () => undefined }]
  const circular: Record<string, unknown> = {}
  circular.self = circular
  for (const data of [...datas, circular]) await t.rejects(app.otp.createToken({ purpose: 'reset', subject: 'eve', data }), input('data'))
  const { token } = await app.otp.createToken({ purpose: 'reset', subject: 'eve', data: { constructor: 'fine', prototype: 1, s: 'not the subject', '\ud800': '\udfff' } })
  t.same(await app.otp.consumeToken(token, { purpose: 'reset' }), { subject: 'eve', data: { constructor: 'fine', prototype: 1, s: 'not the subject', '\ud800': '\udfff' } }, 'odd but plain data round-trips')
  t.ok(new errors.OtpInvalidInputError('x', 'y') instanceof Error && new errors.OtpInvalidInputError('x', 'y').statusCode === 400, 'exported in errors')
})

// ---------------------------------------------------------------------------------------------
// Seeded hostile input over HTTP.

const seed = fuzzSeed()
const total = Number(process.env.FUZZ_REQUESTS ?? 400)

t.test(`hostile input to the OTP routes: no 5xx, every 4xx JSON with a code (FUZZ_SEED=${seed})`, async (t) => {
  t.comment(`otp fuzz: FUZZ_SEED=${seed} FUZZ_REQUESTS=${total}`)
  const { int, pick, chance } = draws(seed)
  const outbox: Outbox = { codes: new Map(), tokens: [] }
  const app = await readmeApp(t, outbox, { maxAttempts: 3, lockAfter: 20 })

  const EMAILS = ['ann@example.com', 'BOB@example.com', 'cy', '\ufffd', 'ü@exämple.com', '东京@example.com']
  const STRINGS = ['', ' ', 'a', '0', '000000', '123456', '1234', '12345678901', '-1', '1e3', 'NaN', 'null', '__proto__', 'constructor', 'toString',
    "' or 1=1 --", '<script>', '../../etc/passwd', '\u0000', '\r\n', '\t', 'İ', '👩‍👩‍👧', '\u202e', 'e\u0301', '\ufeff', '\uffff',
    '\ud800', '\udfff', 'a\ud83dz', '\udc00\ud800', '１２３４５６', 'x'.repeat(1025), 'A'.repeat(43), 'A'.repeat(42) + '=']
  const huge = () => pick(['x', 'é', '😀', '\ud800', '1']).repeat(50_000) // 50,000 to 100,000 UTF-16 units
  function hostile (): unknown {
    switch (int(12)) {
      case 0: return pick([0, -0, 1, 123456, -1, 1.5, 1e21, 1e308, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER])
      case 1: return pick([null, true, false])
      case 2: return []
      case 3: return [pick(STRINGS), pick(STRINGS)]
      case 4: return { toString: 'x', valueOf: 1 }
      case 5: return JSON.parse('{"__proto__":{"admin":true}}') as unknown
      case 6: return JSON.parse('{"constructor":{"prototype":{"admin":true}}}') as unknown
      case 7: return huge()
      case 8: return [pick(STRINGS)]
      case 9: return {}
      default: return pick(STRINGS)
    }
  }
  const validCode = (email: string) => chance(0.5) ? outbox.codes.get(email.toLowerCase()) ?? '123456' : String(int(1e6)).padStart(6, '0')
  const validToken = () => outbox.tokens.length > 0 && chance(0.7) ? pick(outbox.tokens) : randomBytes(32).toString('base64url')
  const purpose = () => chance(0.6) ? pick(['login', 'verify-phone', 'a.b_c-d']) : encodeURIComponent(pick(['log in', 'x'.repeat(65), 'é', '', '?', '%', '__proto__', 'constructor'])) || '%20'

  interface Sent { method: 'GET' | 'POST', url: string, payload?: string, contentType?: string }
  function body (fields: Record<string, () => unknown>): string {
    if (chance(0.08)) return pick(['', '{', 'null', '"x"', '[]', '1', '{"email":"a"}{"email":"b"}', '{"__proto__":{"a":1},"email":"a"}'])
    const out: Record<string, unknown> = {}
    for (const [name, valid] of Object.entries(fields)) {
      if (chance(0.1)) continue
      out[name] = chance(0.55) ? valid() : hostile()
    }
    if (chance(0.1)) out[pick(['extra', 'constructor', 'toString', 'valueOf'])] = hostile()
    if (chance(0.05)) Object.defineProperty(out, '__proto__', { value: { admin: true }, enumerable: true })
    return JSON.stringify(out)
  }
  function generate (): Sent {
    const email = () => pick(EMAILS)
    const json = (url: string, fields: Record<string, () => unknown>): Sent =>
      ({ method: 'POST', url, payload: body(fields), contentType: chance(0.95) ? 'application/json' : pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']) })
    switch (int(8)) {
      case 0: return json('/login/code', { email })
      case 1: { const e = email(); return json('/login/verify', { email: () => e, code: () => validCode(e) }) }
      case 2: return json('/reset/request', { email, data: () => pick([null, { userId: int(100) }, 'x', [1, 2]]) })
      case 3: {
        const v = chance(0.6) ? validToken() : hostile()
        const q = Array.isArray(v) ? v.map((x) => `token=${encodeLoosely(String(x))}`).join('&') : `token=${typeof v === 'string' ? encodeLoosely(v) : encodeLoosely(JSON.stringify(v) ?? '')}`
        return { method: 'GET', url: `/reset${chance(0.9) ? '?' + q : ''}` }
      }
      case 4: return json('/reset', { token: validToken })
      case 5: return json('/reset/revoke', { email })
      case 6: return json(`/codes/${purpose()}`, { email })
      default: { const p = purpose(); const e = email(); return json(`/codes/${p}/verify`, { email: () => e, code: () => outbox.codes.get(`${p}:${e}`) ?? '123456' }) }
    }
  }

  const failures: string[] = []
  const statuses: Record<number, number> = {}
  const codes = new Set<string>()
  for (let i = 0; i < total; i++) {
    const req = generate()
    const res = await app.inject({ method: req.method, url: req.url, ...(req.payload !== undefined ? { payload: req.payload, headers: { 'content-type': req.contentType as string } } : {}) })
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    const what = `#${i} ${req.method} ${req.url.slice(0, 80)} ${req.payload?.slice(0, 120) ?? ''}`
    if (res.statusCode >= 500) { failures.push(`${what} → ${res.statusCode} ${res.body.slice(0, 200)}`); continue }
    if (res.statusCode < 400) continue
    if (!/^application\/json/.test(String(res.headers['content-type']))) { failures.push(`${what} → ${res.statusCode} as ${String(res.headers['content-type'])}`); continue }
    const parsed = res.json<{ code?: unknown, message?: unknown }>()
    if (typeof parsed.code !== 'string' || parsed.code.length === 0) failures.push(`${what} → ${res.statusCode} without a code: ${res.body.slice(0, 200)}`)
    else codes.add(parsed.code)
    if (parsed.code === 'FRS_OTP_INVALID_INPUT' && /option/i.test(String(parsed.message))) failures.push(`${what} → says "option": ${String(parsed.message)}`)
  }
  t.comment(`statuses ${JSON.stringify(statuses)}; 4xx codes ${[...codes].sort().join(' ')}`)
  t.same(failures.slice(0, 20), [], `no 5xx and every 4xx JSON with a code over ${total} requests (replay: FUZZ_SEED=${seed})`)
  t.ok(codes.has('FRS_OTP_INVALID_INPUT'), 'the plugin\'s own 400 was reached')
  t.ok((statuses[200] ?? 0) > 0, 'some requests succeeded')
})
