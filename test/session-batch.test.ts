// Session reads are batched: the reads of one event-loop turn go to Redis in one script call
// (on a Cluster, one per key), each key read once; every read still gets its own session
// object, expired and destroyed sessions in a batch are handled as if read alone, and a read
// that starts after a write has answered sees that write.
import t from 'tap'
import { Cluster } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import type { Socket } from 'node:net'
import { GONE } from '../lib/session/store.js'
import { needsRedis, rawClient, scriptCalls, testRedis } from './fixtures/redis.js'
import { login, me, noKeyWithoutTtl, sessionApp } from './fixtures/session.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())
const cluster = raw instanceof Cluster

const idOf = (cookie: string): string => decodeURIComponent(cookie.split('=')[1] as string).split('.')[0] as string

type Loaded = Record<string, unknown> | null
function read (app: FastifyInstance, sessionId: string): Promise<Loaded> {
  return new Promise((resolve, reject) => {
    app.sessions.store.get(sessionId, (err, session) => { if (err) reject(err); else resolve(session ?? null) })
  })
}

t.test('one script call reads a turn\'s sessions, each key once, renews their TTLs and keeps tombstones', async (t) => {
  const app = await sessionApp(t)
  const a = idOf(await login(app, 'user-a'))
  const b = idOf(await login(app, 'user-b'))
  const cCookie = await login(app, 'user-c')
  const c = idOf(cCookie)
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie: cCookie } })).statusCode, 200)
  const store = app.sessions.store
  await raw.pexpire(store.key(a), 60_000)
  await raw.pexpire(store.key(b), 60_000)

  const before = await scriptCalls(raw)
  const [a1, b1, c1, unknown, a2] = await Promise.all([read(app, a), read(app, b), read(app, c), read(app, 'x'.repeat(32)), read(app, a)])
  const calls = await scriptCalls(raw) - before
  t.equal(calls, cluster ? 4 : 1, cluster ? 'a call per key on a Cluster (a appears twice, read once)' : 'one call for the five reads')
  t.equal(a1?.userId, 'user-a')
  t.equal(a2?.userId, 'user-a')
  t.not(a1, a2, 'two reads of one session get two objects: one request\'s changes never reach another')
  t.equal(b1?.userId, 'user-b')
  t.equal(c1, null, 'a destroyed session is not loaded')
  t.equal(unknown, null, 'an unknown id is not loaded')
  for (const id of [a, b]) {
    const ttl = await raw.pttl(store.key(id))
    t.ok(ttl > 86_400_000 - 5000, `the read renewed ${id === a ? 'a' : 'b'}'s idle TTL (${ttl}ms)`)
  }
  t.equal(await raw.get(store.key(c)), 'x', 'the tombstone stays')
  t.equal(await raw.exists(store.key('x'.repeat(32))), 0, 'reading an unknown id creates nothing')
  await noKeyWithoutTtl(t, raw, app)
})

function write (app: FastifyInstance, sessionId: string, session: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    app.sessions.store.set(sessionId, session as never, (err) => { if (err) reject(err); else resolve() })
  })
}

t.test('writes of a turn go in one call, in order, each as if alone: the later of two wins, a destroyed session stays gone', async (t) => {
  const app = await sessionApp(t)
  const ids = await Promise.all(['w-a', 'w-b', 'w-c'].map(async (u) => idOf(await login(app, u))))
  const [a, b, c] = ids as [string, string, string]
  const [sa, sa2, sb, sc] = await Promise.all([read(app, a), read(app, a), read(app, b), read(app, c)]) as Array<Record<string, unknown>>
  await app.sessions.destroy(c)
  Object.assign(sa as object, { n: 10 })
  Object.assign(sa2 as object, { n: 11 })
  Object.assign(sb as object, { n: 20 })
  Object.assign(sc as object, { n: 30 })
  const stats = { ...app.sessions.store.stats }
  const before = await scriptCalls(raw)
  await Promise.all([write(app, a, sa as never), write(app, b, sb as never), write(app, c, sc as never), write(app, a, sa2 as never)])
  const calls = await scriptCalls(raw) - before
  t.equal(calls, cluster ? 3 : 1, cluster ? 'a call per key on a Cluster' : 'one call for the four writes')
  t.equal((await read(app, a))?.n, 11, 'two writes of one session: the later one wins')
  t.equal((await read(app, b))?.n, 20)
  t.equal(await raw.get(app.sessions.store.key(c)), 'x', 'the destroyed session was not written back')
  t.equal((sc as { [GONE]?: boolean })[GONE], true, 'its write was refused')
  t.notOk((sb as { [GONE]?: boolean })[GONE], 'the others in the batch were not')
  t.equal(app.sessions.store.stats.updated - stats.updated, 3, 'three writes')
  t.equal(app.sessions.store.stats.refused - stats.refused, 1, 'one refused')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('sessions past their absolute lifetime end within a batch; the others in it are served', async (t) => {
  const app = await sessionApp(t, { absoluteTimeout: '600ms', tombstoneTtl: '10s' })
  const old1 = idOf(await login(app, 'old-1'))
  const old2 = idOf(await login(app, 'old-2'))
  // Redis's TTL already stops at the absolute deadline; outlive it, so that only the script's
  // own check of the deadline can end these two.
  for (const id of [old1, old2]) await raw.pexpire(app.sessions.store.key(id), 60_000)
  await new Promise((resolve) => setTimeout(resolve, 700))
  const fresh = idOf(await login(app, 'fresh'))
  const [r1, r2, r3] = await Promise.all([read(app, old1), read(app, fresh), read(app, old2)])
  t.equal(r1, null)
  t.equal(r3, null)
  t.equal(r2?.userId, 'fresh', 'a live session in the same batch is loaded')
  for (const id of [old1, old2]) {
    t.equal(await raw.get(app.sessions.store.key(id)), 'x', 'an ended session becomes a tombstone')
    const ttl = await raw.pttl(app.sessions.store.key(id))
    t.ok(ttl > 0 && ttl <= 10_000, `with the tombstone TTL (${ttl}ms)`)
  }
})

t.test('300 parallel requests over 5 sessions: each request gets its own session, in far fewer script calls', async (t) => {
  const app = await sessionApp(t)
  const users = ['u0', 'u1', 'u2', 'u3', 'u4']
  const cookies = await Promise.all(users.map((u) => login(app, u)))
  const before = await scriptCalls(raw)
  const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => me(app, cookies[i % 5] as string)))
  const calls = await scriptCalls(raw) - before
  t.ok(replies.every((r, i) => r.userId === users[i % 5] && r.id === idOf(cookies[i % 5] as string)), 'every request saw its own session')
  t.ok(calls >= (cluster ? 5 : 1) && calls <= 60, `300 reads in ${calls} script calls`)
})

t.test('a read that starts after a write answered sees the write, though a read of the session is still in flight', { skip: needsRedis('it pauses the client socket') }, async (t) => {
  const app = await sessionApp(t)
  const other = await sessionApp(t, {}, { prefix: app.redisSuite.prefix }) // a second instance
  const cookie = await login(app, 'writer')
  const id = idOf(cookie)
  t.equal((await read(app, id))?.n, 1)
  // Replies to this instance stay unread until resumed: its first read stays in flight.
  // (On a Cluster, the node holding the key is connected: the read above went there.)
  const client = app.redis as unknown as { stream?: Socket, nodes?: (role: string) => Array<{ stream?: Socket }> }
  const sockets = (cluster ? (client.nodes?.('master') ?? []).map((n) => n.stream) : [client.stream]).filter((s) => s !== undefined)
  for (const s of sockets) s.pause()
  const first = read(app, id)
  let settled = false
  first.then(() => { settled = true }, () => {})
  await new Promise((resolve) => setTimeout(resolve, 50)) // Redis has run it
  const write = await other.inject({ method: 'POST', url: '/inc', headers: { cookie } })
  t.equal(write.json().n, 2, 'the other instance wrote n = 2')
  const second = read(app, id)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(settled, false, 'the first read is still in flight')
  for (const s of sockets) s.resume()
  t.equal((await first)?.n, 1, 'the read sent before the write saw n = 1')
  t.equal((await second)?.n, 2, 'the read started after the write saw n = 2, not the in-flight read\'s answer')
})
