import t from 'tap'
import { rawClient, testRedis, freshPrefix } from './fixtures/redis.js'
import { login, me, noKeyWithoutTtl, sessionApp, sessionCookie } from './fixtures/session.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

const idOf = (cookie: string): string => decodeURIComponent(cookie.split('=')[1] as string).split('.')[0] as string

t.test('listForUser and revokeUser span every instance on one Redis, under load', async (t) => {
  const prefix = freshPrefix()
  const a = await sessionApp(t, {}, { prefix })
  const b = await sessionApp(t, {}, { prefix })
  const alice = await Promise.all(Array.from({ length: 40 }, (_, i) => login(i % 2 === 0 ? a : b, 'alice')))
  const bob = await login(a, 'bob')

  const listed = await b.sessions.listForUser('alice')
  t.equal(listed.length, 40, 'every session of alice, from both instances')
  t.same(listed.map((s) => s.id).sort(), alice.map(idOf).sort())
  t.ok(listed.every((s) => s.data.userId === 'alice' && s.expiresAt > Date.now() && s.createdAt <= Date.now() + 1000), 'with data, creation and expiry')
  t.same((await a.sessions.listForUser('bob')).map((s) => s.id), [idOf(bob)])

  // Revoke from one instance while both serve alice's cookies.
  const traffic = Promise.all(alice.flatMap((cookie) => [me(a, cookie), me(b, cookie)]))
  const revoked = await b.sessions.revokeUser('alice')
  await traffic
  t.equal(revoked, 40, 'all 40 live sessions ended')
  const after = await Promise.all(alice.flatMap((cookie) => [me(a, cookie), me(b, cookie)]))
  t.ok(after.every((r) => r.userId === null), 'no instance serves a revoked session')
  t.same(await a.sessions.listForUser('alice'), [])
  t.equal((await me(a, bob)).userId, 'bob', 'other users are untouched')
  await noKeyWithoutTtl(t, raw, a)
})

t.test('a write in flight during revokeUser does not bring the session back', async (t) => {
  const prefix = freshPrefix()
  const a = await sessionApp(t, {}, { prefix })
  const b = await sessionApp(t, {}, { prefix })
  const cookie = await login(a, 'carol')
  const slow = a.inject({ method: 'POST', url: '/held-write', headers: { cookie } })
  await a.holds.entered.promise
  t.equal(await b.sessions.revokeUser('carol'), 1)
  a.holds.release.open()
  t.equal(sessionCookie(await slow), undefined, 'the late response clears the cookie')
  t.equal((await me(b, cookie)).userId, null)
  t.same(await b.sessions.listForUser('carol'), [])
  await noKeyWithoutTtl(t, raw, a)
})

t.test('the index is capped: past maxSessionsPerUser the oldest sessions end', async (t) => {
  const app = await sessionApp(t, { maxSessionsPerUser: 3 })
  const cookies: string[] = []
  for (let i = 0; i < 5; i++) cookies.push(await login(app, 'dan'))
  const listed = await app.sessions.listForUser('dan')
  t.same(listed.map((s) => s.id), cookies.slice(2).map(idOf), 'the 3 newest, oldest first')
  t.equal((await me(app, cookies[0] as string)).userId, null, 'the oldest ended')
  t.equal((await me(app, cookies[1] as string)).userId, null)
  t.equal((await me(app, cookies[4] as string)).userId, 'dan')
  t.equal(await raw.zcard(app.sessions.store.users.key('dan')), 3, 'the index holds 3 entries')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('the index expires with its sessions and follows a change of owner', async (t) => {
  const app = await sessionApp(t, { idleTimeout: '1h', absoluteTimeout: 800 })
  const cookie = await login(app, 'erin')
  const index = app.sessions.store.users.key('erin')
  const ttl = await raw.pttl(index)
  t.ok(ttl > 0 && ttl <= 800, `index TTL ${ttl}ms follows the absolute deadline, not the 1h idle timeout`)

  const other = await login(app, 'erin')
  await app.inject({ method: 'POST', url: '/become', payload: { userId: 'fay' }, headers: { cookie: other } })
  t.same((await app.sessions.listForUser('erin')).map((s) => s.id), [idOf(cookie)], 'the changed session left erin\'s index')
  t.same((await app.sessions.listForUser('fay')).map((s) => s.id), [idOf(other)], 'and joined fay\'s')
  t.equal(await app.sessions.revokeUser('erin'), 1)
  t.equal((await me(app, other)).userId, 'fay', 'revoking erin leaves the session now owned by fay')

  const deadline = Date.now() + 3000
  while ((await raw.exists(index)) + (await raw.exists(app.sessions.store.users.key('fay'))) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await raw.exists(index), 0, 'erin\'s index is gone')
  t.equal(await raw.exists(app.sessions.store.users.key('fay')), 0, 'fay\'s index expired with the session')
  t.equal((await me(app, other)).userId, null)
})
