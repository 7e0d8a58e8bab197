// Hostile input for the Express door over real HTTP: hundreds of generated requests through
// every middleware (sessions, rate limit, response cache, invalidation, OTP through an app route)
// with junk cookies and signatures, odd and huge headers, malformed percent-encoding, prototype
// keys in queries, odd methods and content types, 20 in flight, sent as raw bytes so that
// nothing is cleaned up on the way. No reply may be a 5xx; the app serves normally afterwards.
// The generator is seeded: the seed is printed, and FUZZ_SEED=<n> replays a run
// (FUZZ_REQUESTS=<n> changes its length).
import t from 'tap'
import { connect } from 'node:net'
import express from 'express'
import type { ErrorRequestHandler } from 'express'
import { buildExpress, cookieOf, sessionRoutes } from './fixtures/express-app.js'
import { draws, encodeLoosely, fuzzSeed } from './fixtures/prng.js'

const seed = fuzzSeed()
const total = Number(process.env.FUZZ_REQUESTS ?? 400)
console.log(`# express fuzz: FUZZ_SEED=${seed}`)

const { int, pick, chance } = draws(seed)

const SECRET = 'an-express-fuzz-secret-that-is-long-enough'
// Header values a client can put on the wire (latin1, no CR/LF): junk, huge, prototype names.
const JUNK = [
  '', ' ', 'x', '__proto__', 'constructor', 'toString', 'null', 'undefined', '0', '-1', '1e309', 'NaN',
  '%', '%zz', '%E0%A4%A', '%ED%A0%80', '\u00ff\u00fe', 'é', '\t', '"', '\'', ';', ',', '=', '*', '../..',
  'a'.repeat(300), 'b'.repeat(6000)
]
const junk = (): string => chance(0.1) ? 'z'.repeat(1 + int(8000)) : pick(JUNK)

function cookieHeader (good: string | undefined): string | undefined {
  switch (int(9)) {
    case 0: return undefined
    case 1: return good
    case 2: return `sessionId=${junk()}`
    case 3: return `sessionId=s%3A${encodeLoosely(junk())}.${junk()}`
    case 4: return good === undefined ? 'sessionId=s:abc.def' : `${good.slice(0, -3)}xyz` // a bad signature
    case 5: return `sessionId=${good?.slice('sessionId='.length) ?? ''}; sessionId=${junk()}` // twice
    case 6: return `__proto__=${junk()}; constructor=1; sessionId`
    case 7: return junk()
    default: return `${junk()}=${junk()}; ${good ?? ''}`
  }
}

function pathOf (): string {
  const base = pick(['/items', '/items', '/items/1', `/items/${encodeLoosely(junk()).slice(0, 2000)}`, '/me', '/otp/verify', '/login', '/nope', '/items/'])
  if (!chance(0.6)) return base
  const parts = Array.from({ length: 1 + int(4) }, () => pick([
    'a=1', 'a=2&a=1', '__proto__=1', '__proto__[x]=1', 'constructor[prototype][x]=1', 'a[]=1', 'a[b][c]=d', '%=%', '%zz=1',
    `q=${encodeLoosely(junk())}`, `x=${'y'.repeat(3000)}`, '&&', '=', 'toString=1', 'hasOwnProperty=1'
  ]))
  return `${base}?${parts.join('&')}`
}

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND']
const CONTENT_TYPES = ['application/json', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '*/*', 'application/json; charset=']
const BODIES = ['', '{', '{}', '[]', 'null', '"x"', '1', '{"__proto__":{"admin":true}}', '{"email":{"toString":1},"code":[1]}', '{"email":"a@b.c","code":"123456"}', `{"code":"${'9'.repeat(100_000)}"}`, '{"a":'.repeat(5000) + '1' + '}'.repeat(5000), '\u0000\u0001']

/** One request as raw bytes: the status line of the answer (0 when the connection closed without one). */
function send (port: number, method: string, path: string, headers: Array<[string, string]>, body: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let answer = ''
    const lines = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close', ...headers.map(([k, v]) => `${k}: ${v}`)]
    if (body !== '') lines.push(`content-length: ${Buffer.byteLength(body, 'latin1')}`)
    socket.setTimeout(20_000, () => socket.destroy())
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)))
    socket.write(Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body, 'latin1'))
  })
}

t.test('the Express door under hostile input: no 5xx, and it serves normally afterwards', async (t) => {
  const unexpected: string[] = []
  const { base, suite } = await buildExpress(t, {
    session: { secret: SECRET, cookie: { secure: false } },
    rateLimit: { rate: '1000000/minute' },
    responseCache: { ttl: '1m', vary: ['accept-language'] },
    otp: { secret: SECRET }
  }, (app, suite) => {
    app.set('trust proxy', true) // x-forwarded-for decides the client, junk included
    app.use(suite.sessions.middleware)
    app.get('/items', suite.rateLimit(), suite.responseCache({ tags: ['items'] }), (_req, res) => { res.json({ items: [1, 2] }) })
    app.get('/items/:id', suite.rateLimit({ rate: '1000000/minute' }), suite.responseCache({ perUser: true }), (req, res) => { res.json({ id: req.params.id }) })
    app.post('/items', suite.invalidates({ tags: ['items'] }), (_req, res) => { res.status(201).json({ ok: true }) })
    app.post('/otp/verify', express.json({ limit: '10kb' }), (req, res, next) => {
      const body = req.body as { email?: unknown, code?: unknown } | undefined
      suite.otp.verify({ purpose: 'login', subject: body?.email as string, code: body?.code as string })
        .then((result) => { res.json(result) }, next)
    })
    sessionRoutes(app)
    const onError: ErrorRequestHandler = (err: { status?: number, statusCode?: number, code?: string }, req, res, _next) => {
      const status = err.statusCode ?? err.status ?? 500
      if (status >= 500) unexpected.push(`${req.method} ${req.originalUrl.slice(0, 80)}: ${String(err.code)} ${(err as Error).message}`)
      if (!res.headersSent) res.status(status).json({ code: err.code ?? 'ERROR' })
    }
    app.use(onError)
  })
  const port = Number(new URL(base).port)
  const login = await fetch(base + '/login', { method: 'POST' })
  const good = cookieOf(login)
  t.ok(good, 'a session to send among the junk')

  const statuses = new Map<number, number>()
  const failures: string[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++
      const method = pick(METHODS)
      const path = pathOf()
      const headers: Array<[string, string]> = []
      // A login regenerates (ends) the session it comes with: it gets only junk cookies.
      const cookie = cookieHeader(path.startsWith('/login') ? undefined : good)
      if (cookie !== undefined) headers.push(['cookie', cookie])
      if (chance(0.4)) headers.push(['x-forwarded-for', pick([junk(), '::1', '1.2.3.4, 5.6.7.8', 'fe80::1%eth0', '999.1.1.1', '2001:db8::' + int(9999)])])
      if (chance(0.3)) headers.push(['if-none-match', pick([junk(), '*', 'W/"x"', '"' + junk() + '"'])])
      if (chance(0.2)) headers.push(['if-modified-since', pick([junk(), 'Thu, 01 Jan 1970 00:00:00 GMT', 'Fri, 31 Dec 9999 23:59:59 GMT'])])
      if (chance(0.3)) headers.push(['cache-control', pick([junk(), 'no-cache', 'max-age=0', 'max-age=-1', 'no-store, no-cache', 'max-age=99999999999999999999'])])
      if (chance(0.1)) headers.push(['pragma', pick(['no-cache', junk()])])
      if (chance(0.4)) headers.push(['accept-language', junk()])
      if (chance(0.3)) headers.push(['accept-encoding', pick([junk(), 'gzip', 'br;q=0', '*;q=0'])])
      if (chance(0.2)) headers.push(['authorization', `Bearer ${junk()}`])
      if (chance(0.05)) headers.push(['x-frs-refresh', junk()]) // a forged stale-while-revalidate refresh
      let body = ''
      if (method !== 'GET' && method !== 'HEAD' && chance(0.7)) {
        headers.push(['content-type', pick(CONTENT_TYPES)])
        body = pick(BODIES)
      }
      const status = await send(port, method, path, headers, body)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      if (status >= 500 || status === 0) failures.push(`${status} ${method} ${path.slice(0, 80)} ${JSON.stringify(headers).slice(0, 200)}`)
    }
  }
  await Promise.all(Array.from({ length: 20 }, worker))
  t.comment(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
  t.same(failures, [], `no 5xx and no dropped connection in ${total} requests (FUZZ_SEED=${seed})`)
  t.same(unexpected, [], 'no error reached the error handler as a server fault')
  t.ok([...statuses.keys()].some((s) => s >= 400 && s < 500), 'the hostile requests were refused as client errors')

  // Afterwards: the session still works, the cache and the limiter still answer.
  const me = await fetch(base + '/me', { headers: { cookie: good as string } })
  t.same(await me.json(), { user: 'u1' })
  const items = await fetch(base + '/items')
  t.equal(items.status, 200)
  t.match(items.headers.get('x-cache'), /^(HIT|MISS)$/)
  t.ok(items.headers.get('ratelimit'), 'the limiter still counts')
  t.equal((await suite.health()).ok, true)
})
