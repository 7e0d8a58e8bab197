// Redis unreachable: requests that carry a session get 503 FRS_SESSION_UNAVAILABLE; nobody is
// logged out or handed an empty session, and everything works again once Redis is back.
import t from 'tap'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import { needsRedis, rawClient, testRedis } from './fixtures/redis.js'
import { login, me, sessionApp } from './fixtures/session.js'

const redis = await testRedis()

async function until (fn: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

t.test('a stalled Redis: 503 with a stable code, no new cookie, and the session intact afterwards', { skip: needsRedis('it pauses the server with CLIENT PAUSE') }, async (t) => {
  const app = await sessionApp(t, {}, { commandTimeout: 200 })
  const cookie = await login(app, 'alice')
  const admin = rawClient(redis)
  t.teardown(() => admin.quit())
  await admin.ping() // a Cluster client knows its nodes once connected
  const masters = admin instanceof Cluster ? admin.nodes('master') : [admin as Redis]
  t.equal(masters.length, redis.mode === 'cluster' ? 3 : 1, 'every master is paused')
  await Promise.all(masters.map((m) => m.client('PAUSE', 1500, 'ALL')))

  const started = Date.now()
  const results = await Promise.all([
    app.inject({ url: '/me', headers: { cookie } }),
    app.inject({ method: 'POST', url: '/inc', headers: { cookie } }),
    app.inject({ method: 'POST', url: '/inc' }), // a new session cannot be created either
    app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { cookie } })
  ])
  t.ok(Date.now() - started < 1400, `answered without hanging (${Date.now() - started}ms)`)
  for (const [i, res] of results.entries()) {
    t.equal(res.statusCode, 503, `request ${i}: 503`)
    t.equal(res.json().code, 'FRS_SESSION_UNAVAILABLE')
    t.equal(res.headers['set-cookie'], undefined, 'no cookie is set or cleared')
  }
  const anonymous = await app.inject('/public')
  t.equal(anonymous.statusCode, 200, 'a request without a session cookie does not touch Redis')

  // CLIENT UNPAUSE would itself wait for the pause to end: let it run out.
  t.ok(await until(async () => (await app.inject({ url: '/me', headers: { cookie } })).statusCode === 200, 5000), 'recovers')
  const after = await me(app, cookie)
  t.equal(after.userId, 'alice', 'still logged in')
  t.equal(after.n, 1, 'the data was not overwritten')
  t.ok(app.sessions.store.stats.errors >= 4, 'errors are counted for health output')
})

t.test('Redis stopped, then restarted: 503 while down, sessions work again after', { skip: !redis.controllable && 'the test Redis is not ours to stop' }, async (t) => {
  const app = await sessionApp(t, {}, { commandTimeout: 300 })
  const cookie = await login(app, 'bob')
  await redis.stop()
  let restarted = false
  t.teardown(async () => { if (!restarted) await redis.start() })
  const down = await Promise.all(Array.from({ length: 20 }, () => app.inject({ url: '/me', headers: { cookie } })))
  t.ok(down.every((r) => r.statusCode === 503 && r.json().code === 'FRS_SESSION_UNAVAILABLE'), '20 parallel requests: 503 FRS_SESSION_UNAVAILABLE')
  t.ok(down.every((r) => r.headers['set-cookie'] === undefined), 'the cookie is kept: the user is not logged out')
  await redis.start()
  restarted = true
  t.ok(await until(async () => (await app.inject({ method: 'POST', url: '/login', payload: { userId: 'bob' } })).statusCode === 200, 15_000), 'logins work again')
  const fresh = await login(app, 'bob')
  t.equal((await me(app, fresh)).userId, 'bob')
})
