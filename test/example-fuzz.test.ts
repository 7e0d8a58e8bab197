// Hostile input for the example app over real HTTP: hundreds of generated requests to every route
// (wrong types, missing and extra fields, 100 kB strings, odd content types, prototype keys,
// unicode and lone surrogates, deep nesting, arrays for strings, junk cookies), 20 in flight.
// No reply may be a 5xx, and every 4xx must be JSON with an error code. The generator is seeded:
// the seed is printed, and FUZZ_SEED=<n> replays a run (FUZZ_REQUESTS=<n> changes its length).
import t from 'tap'
import { bootExample, mailedCode } from './fixtures/example.js'
import type { ExampleProcess } from './fixtures/example.js'
import { clusterMode, testRedis } from './fixtures/redis.js'
import { draws, encodeLoosely, fuzzSeed } from './fixtures/prng.js'

const redis = await testRedis()
const seed = fuzzSeed()
const total = Number(process.env.FUZZ_REQUESTS ?? 600)
console.log(`# example fuzz: FUZZ_SEED=${seed}`)

const { int, pick, chance } = draws(seed)

const STRINGS = [
  '', ' ', 'a', 'alice@example.com', ' ALICE@Example.COM ', 'nobody@example.com', 'a@b', '@', 'a@@b', 'x'.repeat(255) + '@example.com',
  '123456', '000000', '12', '-1', '0', '1e3', 'NaN', 'true', 'null', '__proto__', 'constructor', 'toString',
  "' or 1=1 --", '"; drop table listings; --', '<script>alert(1)</script>', '../../etc/passwd', '%00', '\u0000', '\r\n', '\t',
  'İstanbul', 'Zürich', '東京', '👩‍👩‍👧', '\u202ehello', 'e\u0301', '\ufeff', '\uffff',
  '\ud800', '\udfff', 'a\ud83dz', '\udc00\ud800', 'Lisbon'
]
const NUMBERS = [0, -0, 1, 2, 7, 60, 61, 100, -1, 1.5, 1e-9, 1e21, 1e308, -1e308, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 9_999_999_999, 10_000_000_000, 1_000_000, 1_000_001]

// Deep nesting is spliced into the JSON text after JSON.stringify, which would overflow its stack.
const DEEP = /"@@deep:(\d+):(\d)@@"/g

function deep (depth: number): string {
  return `@@deep:${depth}:${int(2)}@@`
}

function stringify (value: unknown): string | undefined {
  return JSON.stringify(value)?.replace(DEEP, (_m, depth: string, kind: string) => {
    const n = Number(depth)
    return kind === '0' ? '['.repeat(n) + '1' + ']'.repeat(n) : '{"a":'.repeat(n) + 'null' + '}'.repeat(n)
  })
}

function hugeString (): string {
  return pick(['x', 'é', '😀', '\ud800', 'a@']).repeat(Math.ceil(100_000 / 2))
}

/** Any JSON value, hostile more often than not. */
function hostile (): unknown {
  switch (int(12)) {
    case 0: return pick(NUMBERS)
    case 1: return pick([null, true, false])
    case 2: return []
    case 3: return [pick(STRINGS), pick(STRINGS)]
    case 4: return { toString: 1, valueOf: 1 }
    case 5: return JSON.parse('{"__proto__":{"admin":true}}') as unknown // an own "__proto__" key
    case 6: return deep(1 + int(chance(0.3) ? 10_000 : 50))
    case 7: return hugeString()
    case 8: return String(pick(NUMBERS))
    case 9: return { }
    default: return pick(STRINGS)
  }
}

interface Field { name: string, valid: () => unknown }
interface Route { method: string, path: () => string, fields?: Field[], query?: Field[], auth?: 'never' }

const listingId = () => pick(['1', '2', '3', '24', '25', '999', '0', '-1', '01', '1.5', 'abc', '9'.repeat(11), '9'.repeat(120), '%00', '%ED%A0%80', '1%2F2', '%E2%80%AE1', '1;2', '1e3', ' 1'])
const validEmail = () => pick(['alice@example.com', 'bob@example.com', `u${int(1e6)}@example.com`, 'ÜSER@exämple.com'])
const validText = () => pick(['Loft', 'A flat in Porto', '東京の部屋', '👩‍👩‍👧 house', 'x'.repeat(200), '\u202eevil', 'İ'])

const ROUTES: Route[] = [
  { method: 'GET', path: () => '/api' },
  { method: 'GET', path: () => '/api/stats' },
  { method: 'GET', path: () => '/api/listings', query: [{ name: 'city', valid: () => pick(['Lisbon', 'Porto', 'Cape Town', 'nowhere']) }] },
  { method: 'GET', path: () => `/api/listings/${listingId()}` },
  {
    method: 'POST',
    path: () => '/api/listings',
    fields: [{ name: 'title', valid: validText }, { name: 'city', valid: validText }, { name: 'price', valid: () => 1 + int(1000) }]
  },
  { method: 'PATCH', path: () => `/api/listings/${listingId()}`, fields: [{ name: 'price', valid: () => 1 + int(1000) }] },
  { method: 'POST', path: () => '/api/auth/code', fields: [{ name: 'email', valid: validEmail }] },
  { method: 'POST', path: () => '/api/auth/verify', fields: [{ name: 'email', valid: validEmail }, { name: 'code', valid: () => String(int(1e6)).padStart(6, '0') }] },
  // These two would end the fuzzer's own session: they get junk cookies instead.
  { method: 'POST', path: () => '/api/auth/logout', fields: [], auth: 'never' },
  { method: 'POST', path: () => '/api/auth/logout-everywhere', fields: [], auth: 'never' },
  { method: 'GET', path: () => '/api/me/dashboard' },
  { method: 'POST', path: () => '/api/bookings', fields: [{ name: 'listingId', valid: () => 1 + int(30) }, { name: 'nights', valid: () => 1 + int(60) }] },
  { method: 'GET', path: () => '/health/redis' },
  { method: 'GET', path: () => '/' },
  { method: 'GET', path: () => pick(['/api/nope', '/api/listings/1/extra', '/nope', '/api/', '/api/listings/']) }
]

/** A JSON body for `fields`: each field valid, hostile, or missing, plus sometimes extra or prototype keys. */
function bodyFor (fields: Field[], tidy: boolean): unknown {
  if (tidy) return Object.fromEntries(fields.map((f) => [f.name, f.valid()]))
  if (chance(0.1)) return hostile() // not an object at all
  const body: Record<string, unknown> = {}
  for (const f of fields) {
    if (chance(0.1)) continue
    body[f.name] = chance(0.6) ? f.valid() : hostile()
  }
  if (chance(0.15)) body[pick(['extra', 'admin', 'userId', 'id', 'ownerId', 'constructor', 'toString', 'valueOf', 'hasOwnProperty'])] = hostile()
  if (chance(0.05)) Object.defineProperty(body, '__proto__', { value: { admin: true }, enumerable: true })
  if (chance(0.05)) body['constructor'] = { prototype: { admin: true } }
  return body
}

const encode = encodeLoosely

function queryFor (fields: Field[] = []): string {
  const parts: string[] = []
  for (const f of fields) {
    if (chance(0.5)) continue
    const v = chance(0.5) ? f.valid() : hostile()
    if (Array.isArray(v)) for (const x of v) parts.push(`${f.name}=${encode(String(x))}`)
    else parts.push(`${f.name}=${encode(typeof v === 'string' ? v.slice(0, 1000) : stringify(v)?.slice(0, 1000) ?? '')}`)
  }
  if (chance(0.15)) parts.push(pick(['x=1', '__proto__=1', 'constructor[prototype][a]=1', 'city[]=a', 'a[b]=c', '%=%', '%zz', '&&', '=', 'city=%ED%A0%80', `q=${'y'.repeat(4000)}`]))
  return parts.length === 0 ? '' : '?' + parts.join('&')
}

const CONTENT_TYPES = [
  'application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1',
  'APPLICATION/JSON', 'application/vnd.api+json', 'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz', 'application/octet-stream', '*/*', 'application/json, text/plain', '', undefined
]

interface Sent { method: string, url: string, headers: Record<string, string>, body?: Buffer, note: string }

function generate (cookie: string): Sent {
  const route = pick(ROUTES)
  let method = route.method
  if (chance(0.05)) method = pick(['PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'POST', 'GET'])
  const url = route.path() + queryFor(route.query)
  // Every request has its own client address, so that the per-IP limits (5 codes / 15 min) do not hide the routes.
  const headers: Record<string, string> = { 'x-forwarded-for': `10.${int(256)}.${int(256)}.${int(256)}` }
  if (route.auth !== 'never' && chance(0.5)) headers.cookie = cookie
  else if (chance(0.3)) headers.cookie = pick(['sessionId=', 'sessionId=abc', `sessionId=${'z'.repeat(3000)}`, 'sessionId=%ED%A0%80', 'sessionId=a.b.c', 'sessionId=s%3Aabc.def', cookie.replace(/.$/, 'x')])
  let body: Buffer | undefined
  let note = ''
  if (method !== 'GET' && method !== 'HEAD' && (route.fields !== undefined || chance(0.3))) {
    // A quarter are well formed, so that the handlers behind the validation see hostile values too.
    const tidy = chance(0.25)
    const type = tidy ? 'application/json' : pick(CONTENT_TYPES)
    if (type !== undefined) headers['content-type'] = type
    if (!tidy && chance(0.08)) {
      const raw = pick(['', '{', '{"email":', 'nul', '[', '"x"', '1', '{"a":1}{"a":2}', 'email=alice%40example.com', '--xyz\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.c\r\n--xyz--', 'bytes'])
      body = raw === 'bytes' ? Buffer.from([0xff, 0xfe, 0x7b, 0xed, 0xa0, 0x80, 0x7d]) : Buffer.from(raw)
      note = 'raw'
    } else if (!tidy && chance(0.05)) {
      body = undefined
      note = 'empty'
    } else {
      const json = stringify(bodyFor(route.fields ?? [], tidy))
      body = Buffer.from(json ?? 'null')
      note = json === undefined ? 'null' : json.slice(0, 120)
    }
  }
  return { method, url, headers, ...(body !== undefined ? { body } : {}), note }
}

interface Outcome { status: number, contentType: string, text: string }

async function send (origin: string, req: Sent): Promise<Outcome> {
  const res = await fetch(origin + req.url, {
    method: req.method,
    headers: req.headers,
    redirect: 'manual',
    ...(req.body !== undefined ? { body: req.body } : {})
  })
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() }
}

/** Why `out` breaks the rules (no 5xx; a 4xx is JSON with a code), or undefined. */
function problem (req: Sent, out: Outcome): string | undefined {
  if (out.status >= 500) return `a ${out.status}`
  if (out.status < 400 || req.method === 'HEAD') return undefined
  if (!/^application\/(problem\+)?json/.test(out.contentType)) return `a ${out.status} as ${out.contentType || 'no content type'}`
  try {
    const body = JSON.parse(out.text) as { code?: unknown }
    if (typeof body.code !== 'string' || body.code.length === 0) return `a ${out.status} without a code`
  } catch {
    return `a ${out.status} whose body is not JSON`
  }
  return undefined
}

async function login (app: ExampleProcess): Promise<string> {
  const post = (path: string, body: unknown) => fetch(`${app.origin}/api${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': '192.0.2.1' }, body: JSON.stringify(body)
  })
  await post('/auth/code', { email: 'alice@example.com' })
  const code = await mailedCode(() => app.mails, 'alice@example.com')
  const verified = await post('/auth/verify', { email: 'alice@example.com', code })
  if (verified.status !== 200) throw new Error(`login failed: ${verified.status} ${await verified.text()}`)
  return (verified.headers.get('set-cookie') ?? '').split(';')[0] as string
}

const skip = clusterMode ? 'the example takes REDIS_URL (standalone); its plugins are covered on the Cluster by their own tests' : false

t.test('the example app under hostile input', { skip }, async (t) => {
  const app = await bootExample({ REDIS_URL: redis.connection.url, ANON_RATE: '1000000/minute', TRUST_PROXY: '1' })
  t.teardown(() => app.stop())
  const cookie = await login(app)
  const json = { 'content-type': 'application/json' }
  const ip = () => ({ 'x-forwarded-for': `10.${int(256)}.${int(256)}.${int(256)}` })

  t.test('the requests that answered 500, and the wrong types that were accepted', async (t) => {
    const cases: Array<[string, string, Record<string, string>, string, number]> = [
      ['POST', '/api/auth/verify', { 'content-type': 'text/plain' }, 'alice@example.com', 415],
      ['POST', '/api/auth/verify', json, '{}', 400],
      ['POST', '/api/auth/verify', json, '{"code":"123456"}', 400],
      ['POST', '/api/auth/verify', json, JSON.stringify({ email: 'a'.repeat(1100), code: '123456' }), 400],
      ['POST', '/api/auth/code', json, '{"email":null}', 400],
      ['POST', '/api/auth/code', json, '{"email":[1,2]}', 400],
      ['POST', '/api/auth/code', json, '{"email":{"toString":1,"valueOf":1}}', 400],
      ['POST', '/api/auth/verify', json, '{"email":"alice@example.com","code":{"toString":1,"valueOf":1}}', 400],
      ['POST', '/api/listings', { ...json, cookie }, '{"title":"t","city":"c","price":{"toString":1,"valueOf":1}}', 400],
      ['PATCH', '/api/listings/2', { ...json, cookie }, '{"price":{"toString":1,"valueOf":1}}', 400],
      ['POST', '/api/bookings', { ...json, cookie }, '{"listingId":{"toString":1,"valueOf":1},"nights":2}', 400],
      ['POST', '/api/listings', { ...json, cookie }, '{"title":"t","city":"c","price":"12"}', 400],
      ['POST', '/api/auth/code', json, '{"email":["alice@example.com"]}', 400],
      ['POST', '/api/auth/code', json, '{"email":"alice@example.com","__proto__":{"admin":true}}', 400],
      ['POST', '/api/auth/code', json, '{"email":"alice@example.com","constructor":{"prototype":{"admin":true}}}', 400],
      ['POST', '/api/auth/code', json, '{"email":"alice@example.com","extra":1}', 400],
      ['POST', '/api/auth/code', { 'content-type': 'application/x-www-form-urlencoded' }, 'email=alice%40example.com', 415],
      ['POST', '/api/auth/code', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--', 415],
      ['GET', '/api/listings?city=Lisbon&city=Porto', {}, '', 400],
      ['GET', '/api/listings/01', {}, '', 400],
      ['GET', `/api/listings?city=${'y'.repeat(20_000)}`, {}, '', 431]
    ]
    for (const [method, url, headers, body, status] of cases) {
      const req: Sent = { method, url, headers: { ...headers, ...ip() }, ...(body === '' ? {} : { body: Buffer.from(body) }), note: body.slice(0, 80) }
      const out = await send(app.origin, req)
      t.equal(out.status, status, `${method} ${url.slice(0, 60)} ${req.note}: ${out.text.slice(0, 160)}`)
      t.equal(problem(req, out), undefined, 'JSON with a code')
    }
    const listings = await (await fetch(`${app.origin}/api/listings`)).json() as Array<{ price: unknown }>
    t.ok(listings.every((l) => typeof l.price === 'number'), 'no price was stored as a string')
  })

  t.test(`${total} generated requests (FUZZ_SEED=${seed}), 20 in flight: no 5xx, every 4xx JSON with a code`, async (t) => {
    const requests = Array.from({ length: total }, () => generate(cookie))
    const statuses = new Map<number, number>()
    const failures: string[] = []
    let next = 0
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (next < requests.length) {
        const req = requests[next++] as Sent
        let why: string | undefined
        try {
          const out = await send(app.origin, req)
          statuses.set(out.status, (statuses.get(out.status) ?? 0) + 1)
          why = problem(req, out)
          if (why !== undefined) why += `: ${out.text.slice(0, 200)}`
        } catch (err) {
          why = `no reply (${String((err as { cause?: unknown }).cause ?? err)})`
        }
        if (why !== undefined && failures.length < 20) {
          failures.push(`${why} <- ${req.method} ${req.url.slice(0, 100)} [${req.headers['content-type'] ?? 'no type'}] ${req.note}`)
        }
      }
    }))
    const seen = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')
    t.comment(`statuses: ${seen}`)
    t.same(failures, [], `no 5xx and every 4xx is JSON with a code (replay with FUZZ_SEED=${seed})`)
    t.equal([...statuses.values()].reduce((a, b) => a + b, 0), total, 'every request got a reply')
    t.ok([...statuses.keys()].some((s) => s >= 200 && s < 300), 'some requests got through')
    t.ok(statuses.has(400) && statuses.has(415), 'and many were refused')
  })

  t.test('afterwards the app still serves, and logged no error', async (t) => {
    const res = await fetch(`${app.origin}/api/listings`)
    t.equal(res.status, 200)
    const errors = app.logs.filter((l) => (l.level ?? 0) >= 50).map((l) => l.msg)
    t.same(errors, [], 'no error in the log')
  })
})
