// The opt-in local cache of session reads: hits skip Redis; any change or end of a session,
// from any instance, drops it everywhere through Redis pub/sub; nothing is served while that
// subscription is down; a read that raced a change is never kept.
import t from 'tap'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { LocalTier } from '../lib/core/index.js'
import { decodeRecord } from '../lib/session/record.js'
import { freshPrefix, needsRedis, rawClient, scriptCalls, testRedis } from './fixtures/redis.js'
import { login, me, noKeyWithoutTtl, sessionApp } from './fixtures/session.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

const idOf = (cookie: string): string => decodeURIComponent(cookie.split('=')[1] as string).split('.')[0] as string
const cacheOf = (app: FastifyInstance): LocalTier<string> => app.sessions.localCache as LocalTier<string>

async function until (done: () => boolean | Promise<boolean>, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!await done()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

// A minute: longer than any test, so that only an invalidation can drop an entry.
const LONG = { localCache: { ttl: '1m' as const } }

async function cachedApp (t: Parameters<typeof sessionApp>[0], opts = {}, prefix = freshPrefix()): Promise<Awaited<ReturnType<typeof sessionApp>>> {
  const app = await sessionApp(t, { ...LONG, ...opts }, { prefix })
  if (!await until(() => cacheOf(app).live)) throw new Error('the invalidation subscription did not come up')
  return app
}

// Logs in on `app`, then waits until the caches of the other `listeners` heard the login's
// write (a create, then a write of the user id: one invalidation; `app` skips its own). On a
// Cluster it travels over the cluster bus and may come after the next reads, which would then
// drop a warmed entry.
async function loggedIn (app: FastifyInstance, userId: string, listeners: FastifyInstance[] = []): Promise<string> {
  const others = listeners.filter((l) => l !== app)
  const before = others.map((l) => cacheOf(l).stats.invalidations)
  const cookie = await login(app, userId)
  if (!await until(() => others.every((l, i) => cacheOf(l).stats.invalidations > (before[i] as number)))) throw new Error('the login was not heard')
  return cookie
}

// Reads until this instance holds the session (a read that overlaps the invalidation of the
// login's own write is, rightly, not kept).
async function warm (app: FastifyInstance, cookie: string): Promise<void> {
  if (!await until(async () => { await me(app, cookie); return cacheOf(app).size > 0 })) throw new Error('the session was never held')
}

async function masters (): Promise<Redis[]> {
  await raw.ping()
  return raw instanceof Cluster ? raw.nodes('master') : [raw as Redis]
}

t.test('off by default; bad options stop startup, naming the option', async (t) => {
  const app = await sessionApp(t)
  t.equal(app.sessions.localCache, undefined)
  await t.rejects(sessionApp(t, { localCache: 'yes' as never }), { code: 'FRS_INVALID_OPTION', message: /"localCache"/ })
  await t.rejects(sessionApp(t, { localCache: { ttl: -5 } }), { message: /"localCache.ttl"/ })
  await t.rejects(sessionApp(t, { localCache: { max: 0 } }), { code: 'FRS_INVALID_OPTION', message: /"localCache.max"/ })
  const on = await sessionApp(t, { localCache: true })
  t.ok(on.sessions.localCache, 'true takes the defaults')
})

t.test('repeated reads are served from memory: no script call for 200 reads', async (t) => {
  const app = await cachedApp(t)
  const cookie = await loggedIn(app, 'alice')
  t.equal(cacheOf(app).size, 1, 'the login wrote it, and this instance kept its own write')
  await warm(app, cookie)
  const hits = cacheOf(app).stats.hits
  const before = await scriptCalls(raw)
  const reads = await Promise.all(Array.from({ length: 200 }, () => me(app, cookie)))
  const calls = await scriptCalls(raw) - before
  t.ok(reads.every((r) => r.userId === 'alice' && r.n === 1), 'every read sees the session')
  t.equal(calls, 0, '200 reads, no script call')
  t.equal(cacheOf(app).stats.hits, hits + 200, 'all 200 from memory')
  // Each hit decodes afresh: a request that changes nested data cannot touch another's copy.
  await app.inject({ method: 'POST', url: '/inc', headers: { cookie } })
  t.equal((await me(app, cookie)).n, 2, 'a write on this instance is seen at once')
  t.match((await app.redisHealth()).session, { localCache: { live: true } }, 'health shows the cache')
  await noKeyWithoutTtl(t, raw, app)
})

t.test('a change, a logout or revokeUser on one instance drops the session on the others', async (t) => {
  const prefix = freshPrefix()
  const a = await cachedApp(t, {}, prefix)
  const b = await cachedApp(t, {}, prefix)
  const c = await cachedApp(t, {}, prefix)
  const cookie = await loggedIn(a, 'bob', [a, b, c])
  const readers = [b, c]
  for (const app of readers) {
    t.equal((await me(app, cookie)).n, 1)
    await warm(app, cookie)
  }
  t.ok(readers.every((app) => cacheOf(app).size === 1), 'b and c hold the session')
  const base = Math.max(...readers.map((app) => cacheOf(app).stats.invalidations))
  const heard = (n: number) => () => readers.every((app) => cacheOf(app).stats.invalidations >= base + n)

  let started = Date.now()
  await a.inject({ method: 'POST', url: '/inc', headers: { cookie } })
  t.ok(await until(heard(1)), `the change reached b and c (${Date.now() - started}ms)`)
  for (const app of readers) t.equal((await me(app, cookie)).n, 2, 'and they read the new value')

  started = Date.now()
  await a.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.ok(await until(heard(2)), `the logout reached b and c (${Date.now() - started}ms)`)
  for (const app of readers) t.equal((await me(app, cookie)).userId, null, 'no instance serves the logged-out session')

  const again = await loggedIn(a, 'bob', [a, b, c])
  for (const app of readers) await warm(app, again)
  const seen = cacheOf(b).stats.invalidations
  await a.sessions.revokeUser('bob')
  t.ok(await until(() => cacheOf(b).stats.invalidations > seen && cacheOf(c).stats.invalidations > seen), 'the revocation reached b and c')
  for (const app of readers) t.equal((await me(app, again)).userId, null, 'no instance serves the revoked session')
})

t.test('an instance keeps its own writes, byte for byte what Redis holds; the others drop theirs', async (t) => {
  const prefix = freshPrefix()
  const a = await cachedApp(t, {}, prefix)
  const b = await cachedApp(t, {}, prefix)
  const cookie = await loggedIn(a, 'hana', [a, b])
  const key = a.sessions.store.key(idOf(cookie))
  await warm(b, cookie)
  const heard = cacheOf(a).stats.invalidations
  const seenByB = cacheOf(b).stats.invalidations
  for (let i = 0; i < 5; i++) await a.inject({ method: 'POST', url: '/inc', headers: { cookie } })
  t.equal(cacheOf(a).get(key, Date.now()), await raw.get(key), 'the kept record is exactly the stored one')
  const hits = cacheOf(a).stats.hits
  t.equal((await me(a, cookie)).n, 6, 'the next read on the writer')
  t.equal(cacheOf(a).stats.hits, hits + 1, 'is served from memory')
  t.ok(await until(() => cacheOf(b).stats.invalidations >= seenByB + 5), 'b heard the 5 writes')
  t.equal(cacheOf(a).stats.invalidations, heard, 'a skipped the messages of its own writes')
  t.equal((await me(b, cookie)).n, 6, 'and b reads the new value')
  // Redis's TTL for the kept entry: a write renews it to the idle timeout, capped.
  t.ok(await raw.pttl(key) > 86_000_000)
})

t.test('several instances under parallel reads and writes: every cache ends with what Redis holds', async (t) => {
  const prefix = freshPrefix()
  const apps = await Promise.all([cachedApp(t, {}, prefix), cachedApp(t, {}, prefix), cachedApp(t, {}, prefix)])
  const cookie = await loggedIn(apps[0] as FastifyInstance, 'carol', apps)
  const heardBefore = apps.map((app) => cacheOf(app).stats.invalidations)
  const key = (apps[0] as FastifyInstance).sessions.store.key(idOf(cookie))
  const state = { writing: true }
  // Readers on every instance, 30 at a time each, for as long as the writes go on.
  const readers = apps.flatMap((app) => Array.from({ length: 30 }, async () => {
    let reads = 0
    while (state.writing) {
      await me(app, cookie)
      reads++
      await new Promise((resolve) => setImmediate(resolve)) // inject has no socket: let I/O in
    }
    return reads
  }))
  // 150 writes spread over the instances, 10 at a time.
  for (let i = 0; i < 150; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, j) => (apps[(i + j) % 3] as FastifyInstance).inject({ method: 'POST', url: '/inc', headers: { cookie } })))
  }
  state.writing = false
  const reads = (await Promise.all(readers)).reduce((a, b) => a + b, 0)
  const stored = decodeRecord(await raw.get(key) as string)?.data.n
  t.ok(typeof stored === 'number' && stored > 1, `writes landed (n = ${String(stored)}), ${reads} reads meanwhile`)
  // Every write published once; once each instance heard them all, none may hold an old value.
  t.ok(await until(() => apps.every((app, i) => cacheOf(app).stats.invalidations >= (heardBefore[i] as number) + 100)), 'every instance heard the 100 changes made by the other two')
  for (const [i, app] of apps.entries()) t.equal((await me(app, cookie)).n, stored, `instance ${i} reads what Redis holds`)
  t.ok(apps.some((app) => cacheOf(app).stats.hits > 0), 'reads were served from memory meanwhile')
})

t.test('a read that was in flight when an invalidation of its key came is not kept', async (t) => {
  const channel = `${freshPrefix()}:changed`
  const cache = new LocalTier<string>(raw, channel, { ttl: 60_000, max: 10 })
  t.teardown(() => cache.close())
  cache.start()
  t.ok(await until(() => cache.live), 'subscribed')
  const raced = cache.begin()
  const other = cache.begin()
  await raw.publish(channel, 'k1')
  t.ok(await until(() => cache.stats.invalidations === 1), 'an invalidation of k1 arrived')
  cache.end('k1', raced, 'old', 60_000, Date.now())
  t.equal(cache.get('k1', Date.now()), undefined, 'the read of k1 that raced it was not kept')
  cache.end('k2', other, 'v2', 60_000, Date.now())
  t.equal(cache.get('k2', Date.now()), 'v2', 'a read of another key in flight at the same time was')
  cache.end('k1', cache.begin(), 'new', 60_000, Date.now())
  t.equal(cache.get('k1', Date.now()), 'new', 'a read of k1 begun after it is kept')
  cache.end('k3', cache.begin(), 'short', 50, Date.now())
  t.equal(cache.get('k3', Date.now() + 60), undefined, 'never kept past the time Redis gave the key')
  cache.end('k4', cache.begin(), undefined, 0, Date.now())
  t.equal(cache.get('k4', Date.now()), undefined, 'no record, nothing kept')
  for (let i = 0; i < 20; i++) cache.end(`m${i}`, cache.begin(), 'v', 60_000, Date.now())
  t.equal(cache.size, 10, 'bounded by max')
  await raw.publish(channel, 'k1')
  t.ok(await until(() => cache.get('k1', Date.now()) === undefined), 'a published key is dropped')
})

t.test('while the subscription is down nothing is served from memory; it comes back', async (t) => {
  const app = await cachedApp(t)
  const cookie = await loggedIn(app, 'dave')
  await warm(app, cookie)
  const cache = cacheOf(app)
  t.ok(cache.size >= 1, 'held')
  for (const node of await masters()) await node.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  t.ok(await until(() => !cache.live), 'the cache notices the lost subscription')
  t.equal(cache.size, 0, 'and drops everything')
  // A change that publishes nothing (made directly in Redis) is seen at once while it is down.
  await raw.set(app.sessions.store.key(idOf(cookie)), 'x', 'PX', 60_000)
  if (!cache.live) t.equal((await me(app, cookie)).userId, null, 'read from Redis: the session is gone')
  t.ok(await until(() => cache.live, 5000), 'the subscription comes back')
  const fresh = await loggedIn(app, 'dave')
  await warm(app, fresh)
  const hits = cache.stats.hits
  await me(app, fresh)
  t.equal(cache.stats.hits, hits + 1, 'and reads are served from memory again')
})

t.test('with an ioredis keyPrefix, invalidations still find their entries', { skip: needsRedis('the ioredis keyPrefix option') }, async (t) => {
  const prefix = freshPrefix()
  const core = redis.mode === 'cluster' ? { clusterOptions: { keyPrefix: 'kp:' } } : { options: { keyPrefix: 'kp:' } }
  const start = async (): Promise<FastifyInstance> => {
    const app = await sessionApp(t, LONG, { prefix, ...core })
    t.ok(await until(() => cacheOf(app).live))
    return app
  }
  const a = await start()
  const b = await start()
  const cookie = await loggedIn(a, 'kim', [a, b])
  t.equal(await raw.exists(`kp:${a.sessions.store.key(idOf(cookie))}`), 1, 'the keys carry the prefix')
  await warm(b, cookie)
  const seen = cacheOf(b).stats.invalidations
  await a.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.ok(await until(() => cacheOf(b).stats.invalidations > seen))
  t.equal((await me(b, cookie)).userId, null, 'the logout dropped the prefixed entry')
})

t.test('losing and regaining the subscription is logged', async (t) => {
  const lines: Array<{ level: number, msg: string }> = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line)) } }
  const app = await sessionApp(t, LONG, {}, { logger: { level: 'info', stream } })
  t.ok(await until(() => cacheOf(app).live))
  for (const node of await masters()) await node.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  t.ok(await until(() => lines.some((l) => l.level === 40 && /subscription lost/.test(l.msg))), 'a warning when it is lost')
  t.ok(await until(() => cacheOf(app).live, 5000))
  t.equal(lines.filter((l) => l.level === 30 && /subscribed to invalidations/.test(l.msg)).length, 2, 'info when it is (back) up')
})

t.test('the idle and absolute timeouts hold for cached reads', async (t) => {
  const app = await cachedApp(t, { idleTimeout: '1h', absoluteTimeout: 1500 })
  const started = Date.now()
  const cookie = await login(app, 'erin')
  let alive = true
  while (alive && Date.now() - started < 6000) {
    alive = (await me(app, cookie)).userId === 'erin'
    if (alive) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const lived = Date.now() - started
  t.notOk(alive, 'the session ended')
  t.ok(lived >= 1400 && lived < 2500, `after about 1.5 s (${lived}ms), though the cache ttl is a minute`)
  t.ok(cacheOf(app).stats.hits > 10, 'reads were served from memory until then')

  const idle = await cachedApp(t, { idleTimeout: 400, rolling: false })
  const c2 = await login(idle, 'fred')
  await me(idle, c2)
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal((await me(idle, c2)).userId, null, 'an idle session (no rolling) ends on time though held')
})

t.test('Redis stopped: the cache empties and requests get 503; it recovers', { skip: !redis.controllable && 'the test Redis is not ours to stop' }, async (t) => {
  const app = await sessionApp(t, LONG, { commandTimeout: 300 })
  t.ok(await until(() => cacheOf(app).live))
  const cookie = await loggedIn(app, 'gina')
  await warm(app, cookie)
  await redis.stop()
  let restarted = false
  t.teardown(async () => { if (!restarted) await redis.start() })
  t.ok(await until(() => !cacheOf(app).live), 'the lost subscription is noticed')
  const down = await Promise.all(Array.from({ length: 20 }, () => app.inject({ url: '/me', headers: { cookie } })))
  t.ok(down.every((r) => r.statusCode === 503 && r.json().code === 'FRS_SESSION_UNAVAILABLE'), '503, not a session from memory')
  await redis.start()
  restarted = true
  t.ok(await until(() => cacheOf(app).live, 15_000), 'subscribed again')
  t.ok(await until(async () => (await app.inject({ method: 'POST', url: '/login', payload: { userId: 'gina' } })).statusCode === 200, 15_000), 'logins work again')
  const fresh = await loggedIn(app, 'gina')
  t.equal((await me(app, fresh)).userId, 'gina')
})
