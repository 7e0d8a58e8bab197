import t from 'tap'
import Fastify from 'fastify'
import { Signer } from '@fastify/cookie'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import redisPlugin from '../plugins/redis.js'
import sessionPlugin from '../plugins/session.js'
import { freshPrefix, rawClient, scanKeys, testRedis } from './fixtures/redis.js'
import { login, me, noKeyWithoutTtl, SECRET, sessionApp, sessionCookie } from './fixtures/session.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

const idOf = (cookie: string): string => decodeURIComponent(cookie.split('=')[1] as string).split('.')[0] as string

t.test('anonymous traffic writes no key; the cookie is httpOnly, SameSite=Lax, Path=/, not Secure outside production', async (t) => {
  const app = await sessionApp(t)
  const anon = await Promise.all(Array.from({ length: 50 }, () => app.inject('/me')))
  t.ok(anon.every((r) => r.statusCode === 200 && r.headers['set-cookie'] === undefined), 'no cookie for a session that holds nothing')
  t.same(await scanKeys(raw, app.redisSuite.prefix), [], 'saveUninitialized is off: no key')

  const res = await app.inject({ method: 'POST', url: '/inc' })
  const c = res.cookies.find((c) => c.name === 'sessionId')
  t.ok(c, 'a session with data gets a cookie')
  t.equal(c?.httpOnly, true)
  t.equal(c?.sameSite, 'Lax')
  t.equal(c?.path, '/')
  t.notOk(c?.secure, 'not Secure when NODE_ENV is not production')
  t.equal(c?.domain, undefined)
  const ttl = await raw.pttl(app.sessions.store.key(idOf(sessionCookie(res) as string)))
  t.ok(ttl > 86_400_000 - 5000 && ttl <= 86_400_000, `Redis TTL is the cookie max age (1d), got ${ttl}`)
  t.ok(Math.abs(new Date(c?.expires as Date).getTime() - Date.now() - 7 * 86_400_000) < 5000, 'the cookie expires at the absolute deadline (7d): Redis enforces the idle timeout')
  t.match((await app.redisHealth()).session, { created: 1, loaded: 0, errors: 0 }, 'store stats in redisHealth()')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('NODE_ENV=production makes the cookie Secure; the option overrides it', async (t) => {
  const before = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  t.teardown(() => { process.env.NODE_ENV = before })
  const app = await sessionApp(t, {}, {}, { trustProxy: true })
  const https = { 'x-forwarded-proto': 'https' }
  const res = await app.inject({ method: 'POST', url: '/inc', headers: https })
  t.equal(res.cookies.find((c) => c.name === 'sessionId')?.secure, true)
  const plain = await app.inject({ method: 'POST', url: '/inc' })
  t.equal(plain.headers['set-cookie'], undefined, 'a Secure session cookie is never sent over plain http')

  const off = await sessionApp(t, { cookie: { secure: false } })
  const res2 = await off.inject({ method: 'POST', url: '/inc' })
  t.notOk(res2.cookies.find((c) => c.name === 'sessionId')?.secure, 'secure: false wins')
})

t.test('hostPrefix names the cookie __Host-… with Secure, Path=/ and no Domain', async (t) => {
  const app = await sessionApp(t, { hostPrefix: true, cookie: { secure: true } }, {}, { trustProxy: true })
  const https = { 'x-forwarded-proto': 'https' }
  const res = await app.inject({ method: 'POST', url: '/inc', headers: https })
  const c = res.cookies.find((c) => c.name === '__Host-sessionId')
  t.ok(c, 'cookie named __Host-sessionId')
  t.equal(c?.secure, true)
  t.equal(c?.path, '/')
  t.equal(c?.domain, undefined)
  const again = await app.inject({ method: 'POST', url: '/inc', headers: { ...https, cookie: `__Host-sessionId=${encodeURIComponent(c?.value as string)}` } })
  t.equal(again.json().n, 2, 'the __Host- cookie carries the session')
  await t.rejects(sessionApp(t, { hostPrefix: true, cookie: { secure: false } }), { code: 'FRS_INVALID_OPTION', message: /hostPrefix/ })
})

t.test('a missing, short or wrong secret stops startup with an error naming the option', async (t) => {
  const start = async (secret: unknown) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
    await app.register(sessionPlugin, { secret } as never)
    await app.ready()
  }
  await t.rejects(start(undefined), { code: 'FRS_INVALID_OPTION', message: /"secret".*required/ })
  await t.rejects(start('short'), { code: 'FRS_INVALID_OPTION', message: /"secret".*at least 32 characters, got 5/ })
  await t.rejects(start([]), { code: 'FRS_INVALID_OPTION', message: /"secret"/ })
  await t.rejects(start([SECRET, 'x'.repeat(31)]), { code: 'FRS_INVALID_OPTION', message: /"secret\[1\]".*got 31/ })
  await t.rejects(start(42), { code: 'FRS_INVALID_OPTION', message: /"secret"/ })
  await t.resolves(start([SECRET, 'y'.repeat(32)]), 'two secrets of 32+ characters start')
})

t.test('other invalid options stop startup, naming the option', async (t) => {
  const start = async (opts: Record<string, unknown>) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
    await app.register(sessionPlugin, { secret: SECRET, ...opts })
    await app.ready()
  }
  await t.rejects(start({ idleTimeout: 'soon' }), { code: 'FRS_INVALID_DURATION', message: /"idleTimeout"/ })
  await t.rejects(start({ absoluteTimeout: 0 }), { code: 'FRS_INVALID_DURATION', message: /"absoluteTimeout"/ })
  await t.rejects(start({ cookie: { sameSite: 'none', secure: false } }), { code: 'FRS_INVALID_OPTION', message: /"cookie.sameSite"/ })
  await t.rejects(start({ maxSessionsPerUser: 0 }), { code: 'FRS_INVALID_OPTION', message: /"maxSessionsPerUser"/ })
  await t.rejects(start({ userIdField: '_frs' }), { code: 'FRS_INVALID_OPTION', message: /"userIdField"/ })
  await t.rejects(start({ cookieName: 'a;b' }), { code: 'FRS_INVALID_OPTION', message: /"cookieName"/ })
})

t.test('secret rotation: the first secret signs, every one verifies; a dropped secret ends its cookies', async (t) => {
  const oldSecret = 'o'.repeat(40)
  const newSecret = 'n'.repeat(40)
  const prefix = freshPrefix()
  const a = await sessionApp(t, { secret: oldSecret }, { prefix })
  const b = await sessionApp(t, { secret: [newSecret, oldSecret] }, { prefix })
  const c = await sessionApp(t, { secret: newSecret }, { prefix })
  const cookie = await login(a, 'alice')
  t.equal((await me(b, cookie)).userId, 'alice', 'an old-secret cookie is accepted while the old secret is listed')
  const resigned = sessionCookie(await b.inject({ method: 'POST', url: '/inc', headers: { cookie } })) as string
  t.equal(idOf(resigned), idOf(cookie), 'same session')
  t.equal((await me(c, resigned)).userId, 'alice', 'b re-signed the cookie with the new secret')
  t.equal((await me(c, cookie)).userId, null, 'without the old secret, an old-signed cookie is refused')

  // A request that only reads re-signs an old cookie too (and is not logged out by it).
  const other = await login(a, 'amy')
  const read = await b.inject({ method: 'GET', url: '/me', headers: { cookie: other } })
  t.equal(read.json().userId, 'amy')
  const set = read.cookies.filter((c) => c.name === 'sessionId')
  t.equal(set.length, 1, 'one Set-Cookie for the session: no clear before it')
  t.not(set[0]?.value, '', 'which is not a clear')
  const fresh = `sessionId=${encodeURIComponent(set[0]?.value as string)}`
  t.equal(idOf(fresh), idOf(other), 'same session')
  t.equal((await me(c, fresh)).userId, 'amy', 'signed with the new secret')
  t.ok(Math.abs(new Date(set[0]?.expires as Date).getTime() - Date.now() - 7 * 86_400_000) < 5000, 'expiring at the absolute deadline')
  const again = await b.inject({ method: 'GET', url: '/me', headers: { cookie: fresh } })
  t.equal(again.headers['set-cookie'], undefined, 'a new-secret cookie is not sent again by a read')
})

t.test('forged, unknown and expired ids are never adopted', async (t) => {
  const app = await sessionApp(t, { idleTimeout: 300 })
  const forged = await app.inject({ method: 'POST', url: '/inc', headers: { cookie: 'sessionId=attacker-chosen' } })
  t.not(idOf(sessionCookie(forged) as string), 'attacker-chosen')

  // A correctly signed id that Redis does not know (a leaked secret, or an old cookie).
  const signed = new Signer(SECRET).sign('planted-id-0123456789')
  const res = await app.inject({ method: 'POST', url: '/inc', headers: { cookie: `sessionId=${encodeURIComponent(signed)}` } })
  t.equal(res.json().n, 1, 'a new, empty session')
  t.not(idOf(sessionCookie(res) as string), 'planted-id-0123456789', 'with a new id')
  t.equal(await raw.exists(app.sessions.store.key('planted-id-0123456789')), 0, 'the planted id was not stored')

  const cookie = await login(app, 'bob')
  const deadline = Date.now() + 5000
  while (await raw.exists(app.sessions.store.key(idOf(cookie))) === 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const after = await app.inject({ method: 'POST', url: '/inc', headers: { cookie } })
  t.equal(after.json().n, 1, 'expired: a new session starts')
  t.not(idOf(sessionCookie(after) as string), idOf(cookie), 'under a new id')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('regenerate() at login removes the old id (session fixation)', async (t) => {
  const app = await sessionApp(t)
  const anon = sessionCookie(await app.inject({ method: 'POST', url: '/inc' })) as string
  t.equal(await raw.exists(app.sessions.store.key(idOf(anon))), 1)
  const cookie = await login(app, 'carol', anon)
  t.not(idOf(cookie), idOf(anon), 'a new id after login')
  t.equal(await raw.get(app.sessions.store.key(idOf(anon))), 'x', 'the old id holds only a tombstone')
  t.equal((await me(app, anon)).userId, null, 'the pre-login cookie does not reach the logged-in session')
  t.equal((await me(app, cookie)).userId, 'carol')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('a read-only request renews the TTL with PEXPIRE and never SETs (observed with MONITOR)', async (t) => {
  const app = await sessionApp(t)
  const cookie = await login(app, 'dave')
  const key = app.sessions.store.key(idOf(cookie))
  await raw.ping() // a Cluster client knows its nodes once connected
  const nodes = raw instanceof Cluster ? raw.nodes('master') : [raw as Redis]
  const seen: string[][] = []
  const monitors = await Promise.all(nodes.map((n) => n.monitor()))
  t.teardown(() => Promise.all(monitors.map((m) => m.disconnect())))
  for (const m of monitors) m.on('monitor', (_time: string, args: string[]) => { if (args.includes(key)) seen.push(args) })

  const count = (name: string) => seen.filter((a) => a[0]?.toLowerCase() === name).length
  const until = async (done: () => boolean) => {
    const deadline = Date.now() + 3000
    while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({ method: 'GET', url: '/me', headers: { cookie } })
    t.equal(res.headers['set-cookie'], undefined, 'a read sends no cookie: it lasts until the absolute deadline')
  }
  await app.inject({ method: 'POST', url: '/same', headers: { cookie } }) // assigns an unchanged value
  await until(() => count('pexpire') >= 6)
  const commands = seen.map((a) => a[0]?.toLowerCase()).filter((c) => c !== 'eval' && c !== 'evalsha')
  t.equal(count('pexpire'), 6, '6 read-only requests, 6 PEXPIREs')
  t.equal(count('get'), 6, 'and 6 GETs (one script call each)')
  t.same(commands.filter((c) => c !== 'pexpire' && c !== 'get'), [], 'and no SET or anything else')
  // A write afterwards shows that MONITOR does see our SETs (else the test could not fail).
  await app.inject({ method: 'POST', url: '/inc', headers: { cookie } })
  await until(() => count('set') > 0)
  t.equal(count('set'), 1, 'the write is one SET')
  t.equal((await me(app, cookie)).n, 2)
})

t.test('a slow read-only request racing writes does not undo them', async (t) => {
  const app = await sessionApp(t)
  const cookie = await login(app, 'erin')
  const slow = app.inject({ method: 'GET', url: '/held-read', headers: { cookie } })
  await app.holds.entered.promise // the slow request has loaded n = 1
  const writes = await Promise.all(Array.from({ length: 5 }, () => app.inject({ method: 'POST', url: '/inc', headers: { cookie } })))
  t.ok(writes.every((w) => w.statusCode === 200))
  const reads = await Promise.all(Array.from({ length: 200 }, () => me(app, cookie)))
  t.ok(reads.every((r) => r.userId === 'erin'), '200 parallel reads see the session')
  const after = (await me(app, cookie)).n as number
  t.ok(after > 1, `writes landed (n = ${after})`)
  app.holds.release.open()
  t.equal((await slow).json().n, 1, 'the slow request saw the old value')
  t.equal((await me(app, cookie)).n, after, 'and did not write it back')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('logout during an in-flight request: the session stays gone', async (t) => {
  const app = await sessionApp(t)
  const cookie = await login(app, 'frank')
  const id = idOf(cookie)
  const slow = app.inject({ method: 'POST', url: '/held-write', headers: { cookie } })
  await app.holds.entered.promise
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.equal(out.statusCode, 200)
  t.equal(out.cookies.find((c) => c.name === 'sessionId')?.value, '', 'logout clears the cookie')
  app.holds.release.open()
  const res = await slow
  t.equal(res.statusCode, 200)
  t.equal(sessionCookie(res), undefined, 'the late response clears the cookie')
  t.equal(await raw.get(app.sessions.store.key(id)), 'x', 'the key holds the tombstone, not the late write')
  const tomb = await raw.pttl(app.sessions.store.key(id))
  t.ok(tomb > 0 && tomb <= 300_000, `short tombstone (${tomb}ms)`)
  t.equal((await me(app, cookie)).userId, null, 'the old cookie finds no session')
  t.equal(app.sessions.store.stats.refused, 1, 'one write refused')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('a session that expires during a request is not recreated by its late write', async (t) => {
  const app = await sessionApp(t, { idleTimeout: 400 })
  const cookie = await login(app, 'jay')
  const key = app.sessions.store.key(idOf(cookie))
  const slow = app.inject({ method: 'POST', url: '/held-write', headers: { cookie } })
  await app.holds.entered.promise
  const deadline = Date.now() + 5000
  while (await raw.exists(key) === 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await raw.exists(key), 0, 'expired while the request ran')
  app.holds.release.open()
  const res = await slow
  t.equal(res.statusCode, 200)
  t.equal(sessionCookie(res), undefined, 'the response clears the cookie')
  t.equal(await raw.exists(key), 0, 'the late write did not recreate it')
  t.equal((await me(app, cookie)).userId, null)
})

t.test('a new id is created only if unused (NX): a create never overwrites a session', async (t) => {
  const app = await sessionApp(t)
  const cookie = await login(app, 'gina')
  const id = idOf(cookie)
  const fake = { cookie: { originalMaxAge: 60_000 }, userId: 'mallory', isModified: () => true }
  await new Promise<void>((resolve, reject) => app.sessions.store.set(id, fake, (err) => err ? reject(err) : resolve()))
  t.equal((await me(app, cookie)).userId, 'gina', 'the existing session is intact')
  t.equal(app.sessions.store.stats.refused, 1, 'the create was refused')
  t.same(await app.sessions.listForUser('mallory'), [], 'no session for the would-be owner')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('a change of the cookie max age alone (remember me) is stored, capped by the absolute lifetime', async (t) => {
  const app = await sessionApp(t, { idleTimeout: '1h', absoluteTimeout: '10d' })
  const cookie = await login(app, 'ivy')
  const key = app.sessions.store.key(idOf(cookie))
  t.ok(await raw.pttl(key) <= 3_600_000, 'idle TTL 1h at first')
  const res = await app.inject({ method: 'POST', url: '/remember', headers: { cookie } })
  const ttl = await raw.pttl(key)
  t.ok(ttl > 9 * 86_400_000 && ttl <= 10 * 86_400_000, `TTL now follows the 30d max age, capped at 10d (${ttl}ms)`)
  const expires = new Date(res.cookies.find((c) => c.name === 'sessionId')?.expires as Date).getTime()
  t.ok(expires - Date.now() <= 10 * 86_400_000 + 5000, 'the cookie does not outlive the absolute deadline')
  await me(app, cookie)
  t.ok(await raw.pttl(key) > 9 * 86_400_000, 'reads renew to the stored max age')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('absolute timeout: rolling renewal never extends a session past it', async (t) => {
  const app = await sessionApp(t, { idleTimeout: '1h', absoluteTimeout: 1500 })
  const started = Date.now()
  const cookie = await login(app, 'hank')
  const key = app.sessions.store.key(idOf(cookie))
  await me(app, cookie)
  const ttl = await raw.pttl(key)
  t.ok(ttl > 0 && ttl <= 1500, `renewed TTL is capped by the absolute lifetime (${ttl}ms), not 1h`)
  let alive = true
  while (alive && Date.now() - started < 6000) {
    alive = (await me(app, cookie)).userId === 'hank' // every request renews
    if (alive) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const lived = Date.now() - started
  t.notOk(alive, 'the session ended')
  t.ok(lived >= 1400 && lived < 3000, `after about 1.5 s of steady use (${lived}ms)`)
  await noKeyWithoutTtl(t, raw, app)
})
