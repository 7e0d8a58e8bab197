// The Express example, walked end to end over real HTTP: cached products and their
// invalidation, login with a failure limit, the session, logout, a one-time code used once.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createExpressApp, openSuite } from '../example-app/express.js'
import { cookieOf } from './fixtures/express-app.js'
import { freshPrefix, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const suite = await openSuite({ ...redis.connection, prefix: freshPrefix() })
const codes = new Map<string, string>()
const server = createExpressApp(suite, (email, code) => codes.set(email, code)).listen(0, '127.0.0.1')
await once(server, 'listening')
t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)); await suite.close() })
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const post = (path: string, body: object, cookie?: string) => fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...(cookie === undefined ? {} : { cookie }) }, body: JSON.stringify(body) })

t.test('products: MISS, HIT, and a new product invalidates the list before its 201', async (t) => {
  t.equal((await fetch(base + '/products')).headers.get('x-cache'), 'MISS')
  const hit = await fetch(base + '/products')
  t.equal(hit.headers.get('x-cache'), 'HIT')
  t.match(hit.headers.get('ratelimit'), /;r=\d+;t=/, 'rate-limit headers on the route')
  t.equal((await post('/products', { name: 'Coffee' })).status, 201)
  const after = await fetch(base + '/products')
  t.equal(after.headers.get('x-cache'), 'MISS')
  t.match(await after.json(), [{ name: 'Tea' }, { name: 'Coffee' }])
})

t.test('sessions: login (right password, not counted) sets the cookie, /me reads it, logout clears it', async (t) => {
  const login = await post('/login', { user: 'bob', password: 'secret' })
  t.equal(login.status, 200)
  const cookie = cookieOf(login) as string
  t.same(await (await fetch(base + '/me', { headers: { cookie } })).json(), { user: 'bob' })
  t.match((await post('/logout', {}, cookie)).headers.getSetCookie().join(), /sessionId=;/)
  t.same(await (await fetch(base + '/me', { headers: { cookie } })).json(), { user: null })
})

t.test('login: 5 wrong passwords, then 429 even for the right one; a fresh client logs in, reads and logs out', async (t) => {
  const wrong = await Promise.all(Array.from({ length: 8 }, () => post('/login', { user: 'ann', password: 'nope' }).then((r) => r.status)))
  t.same(wrong.sort(), [401, 401, 401, 401, 401, 429, 429, 429])
  const limited = await post('/login', { user: 'ann', password: 'secret' })
  t.equal(limited.status, 429)
  t.match(await limited.json(), { code: 'FRS_RATE_LIMITED' })
})

t.test('a one-time code works once; bad input is a 400', async (t) => {
  t.equal((await post('/otp', { email: 'ann@example.com' })).status, 202)
  const code = codes.get('ann@example.com') as string
  const results = await Promise.all(Array.from({ length: 20 }, () => post('/otp/verify', { email: 'ann@example.com', code }).then((r) => r.status)))
  t.same(results.sort(), [200, ...Array(19).fill(401)])
  const bad = await post('/otp/verify', { email: 'ann@example.com', code: 'x'.repeat(500) })
  t.equal(bad.status, 400)
  t.match(await bad.json(), { code: 'FRS_OTP_INVALID_INPUT' })
})
