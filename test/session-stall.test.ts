// A stalled Redis (CLIENT PAUSE on every master) meets requests that already loaded their
// session: each answers 503 within one commandTimeout and sends its write once; and a write
// that finds its session ended meanwhile sends one Set-Cookie and tells the route.
import t from 'tap'
import type { Test } from 'tap'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import { needsRedis, rawClient, testRedis } from './fixtures/redis.js'
import { gate, login, me, sessionApp } from './fixtures/session.js'

const redis = await testRedis()
const admin = rawClient(redis)
t.teardown(() => admin.quit())
await admin.ping() // a Cluster client knows its nodes once connected
const masters = admin instanceof Cluster ? admin.nodes('master') : [admin as Redis]

const COMMAND_TIMEOUT = 1000
// Tests run in parallel on 2 cores: generous, yet below a second command timeout.
const SLACK = 750
const PAUSE = 2600

const idOf = (cookie: string): string => decodeURIComponent(cookie.split('=')[1] as string).split('.')[0] as string
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sessionCookies = (res: { headers: Record<string, unknown> }): string[] => {
  const h = res.headers['set-cookie']
  const all = h === undefined ? [] : Array.isArray(h) ? h as string[] : [h as string]
  return all.filter((c) => c.startsWith('sessionId='))
}

/** Pauses every master; resolves when the pause has run out (CLIENT UNPAUSE would wait for it too). */
async function pauseAll (): Promise<{ over: Promise<void> }> {
  await Promise.all(masters.map((m) => m.client('PAUSE', PAUSE, 'ALL')))
  const until = Date.now() + PAUSE
  return { over: sleep(PAUSE + 100).then(async () => { while (Date.now() < until) await sleep(20); await Promise.all(masters.map((m) => m.ping())) }) }
}

/** How many times a script SET `key`, seen by MONITOR on every master (reads GET and PEXPIRE it). */
async function watch (t: Test, key: string): Promise<() => number> {
  const seen: string[][] = []
  const monitors = await Promise.all(masters.map((n) => n.monitor()))
  t.teardown(() => Promise.all(monitors.map((m) => m.disconnect())))
  for (const m of monitors) m.on('monitor', (_time: string, args: string[]) => { if (args.includes(key)) seen.push(args) })
  return () => seen.filter((a) => a[0]?.toLowerCase() === 'set').length
}

t.test('regenerate() at login against a stalled Redis: 503 within one commandTimeout, no cookie', { skip: needsRedis('it pauses the server with CLIENT PAUSE') }, async (t) => {
  const app = await sessionApp(t, {}, { commandTimeout: COMMAND_TIMEOUT })
  const cookie = await login(app, 'ann')

  // A login without a session: regenerate() destroys the fresh id, then creates the new one.
  let pause = await pauseAll()
  let started = Date.now()
  const fresh = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'ann' } })
  let took = Date.now() - started
  t.equal(fresh.statusCode, 503)
  t.equal(fresh.json().code, 'FRS_SESSION_UNAVAILABLE')
  t.ok(took <= COMMAND_TIMEOUT + SLACK, `answered within one commandTimeout (took ${took}ms)`)
  t.same(sessionCookies(fresh), [], 'no cookie set or cleared')
  await pause.over

  // A login from a loaded session, Redis stalling after the read.
  const slow = app.inject({ method: 'POST', url: '/held-login', payload: { userId: 'ann' }, headers: { cookie } })
  await app.holds.entered.promise
  pause = await pauseAll()
  started = Date.now()
  app.holds.release.open()
  const res = await slow
  took = Date.now() - started
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FRS_SESSION_UNAVAILABLE')
  t.ok(took <= COMMAND_TIMEOUT + SLACK, `answered within one commandTimeout (took ${took}ms)`)
  t.same(sessionCookies(res), [], 'no cookie set or cleared: the 503 logs nobody out')
  await pause.over
  const again = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'ann' } })
  t.equal(again.statusCode, 200, 'logins work once Redis is back')
})

for (const route of ['/held-write', '/held-save']) {
  t.test(`a write (${route}) against a stalled Redis: one attempt, 503 within one commandTimeout`, { skip: needsRedis('it pauses the server with CLIENT PAUSE') }, async (t) => {
    const app = await sessionApp(t, {}, { commandTimeout: COMMAND_TIMEOUT })
    const cookie = await login(app, 'bea')
    const key = app.sessions.store.key(idOf(cookie))
    const sets = await watch(t, key)
    const slow = app.inject({ method: 'POST', url: route, headers: { cookie } })
    await app.holds.entered.promise
    const pause = await pauseAll()
    const started = Date.now()
    app.holds.release.open()
    const res = await slow
    const took = Date.now() - started
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'FRS_SESSION_UNAVAILABLE')
    t.ok(took <= COMMAND_TIMEOUT + SLACK, `answered within one commandTimeout (took ${took}ms)`)
    t.same(sessionCookies(res), [], 'no cookie set or cleared')
    await pause.over
    await sleep(300) // the write sent during the pause runs now
    t.equal(sets(), 1, 'the write was sent once')
    t.equal((await me(app, cookie)).userId, 'bea', 'still logged in')
  })
}

t.test('a write that finds its session ended meanwhile: one Set-Cookie (a clear), and save() tells the route', { skip: needsRedis('it pauses the server with CLIENT PAUSE') }, async (t) => {
  const app = await sessionApp(t)

  // The write at the end of the request (the route did not call save()): 200, one clear.
  let cookie = await login(app, 'cy')
  let slow = app.inject({ method: 'POST', url: '/held-write', headers: { cookie } })
  await app.holds.entered.promise
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200)
  app.holds.release.open()
  let res = await slow
  t.equal(res.statusCode, 200)
  t.equal(sessionCookies(res).length, 1, `one Set-Cookie for the cookie: ${JSON.stringify(sessionCookies(res))}`)
  t.match(sessionCookies(res)[0], /^sessionId=;/, 'and it clears it')
  t.equal(await admin.get(app.sessions.store.key(idOf(cookie))), 'x', 'the tombstone stays')

  // The route awaits save(): it rejects with FRS_SESSION_ENDED (401), revoked on another request.
  app.holds.entered = gate()
  app.holds.release = gate()
  cookie = await login(app, 'cy')
  slow = app.inject({ method: 'POST', url: '/held-save', headers: { cookie } })
  await app.holds.entered.promise
  t.equal(await app.sessions.revokeUser('cy'), 1)
  app.holds.release.open()
  res = await slow
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'FRS_SESSION_ENDED', 'the route learns that its session ended')
  t.equal(sessionCookies(res).length, 1, `one Set-Cookie for the cookie: ${JSON.stringify(sessionCookies(res))}`)
  t.match(sessionCookies(res)[0], /^sessionId=;/, 'and it clears it')
  t.equal(await admin.get(app.sessions.store.key(idOf(cookie))), 'x', 'nothing was written over the tombstone')
  t.equal((await me(app, cookie)).userId, null)
})
