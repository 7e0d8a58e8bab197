import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { buildApp } from './fixtures/app.js'
import { clusterMode, rawClient, scanKeys, testRedis } from './fixtures/redis.js'
import { cacheApp, eventually, noKeyWithoutTtl } from './fixtures/cache.js'
import cachePlugin from '../plugins/cache.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

t.test('incr / decr: atomic, keep the TTL, never create a key without one', async (t) => {
  const { app } = await cacheApp(t, { ttl: '1m' })
  const cache = app.cache
  t.equal(await cache.incr('n'), 1, 'a missing counter starts at 0')
  t.ok(await raw.pttl(cache.key('n')) > 58_000, 'created with the default ttl')
  await cache.expire('n', '5s')
  t.equal(await cache.incr('n', 10), 11)
  t.ok(await raw.pttl(cache.key('n')) <= 5000, 'incr keeps the TTL')
  t.equal(await cache.decr('n', 2), 9)
  await cache.set('m', 5)
  t.equal(await raw.get(cache.key('m')), '5', 'an integer set() is stored bare')
  t.equal(await cache.incr('m'), 6, 'so INCR works on it')
  t.equal(await cache.get('m'), 6)
  const results = await Promise.all(Array.from({ length: 200 }, () => cache.incr('c')))
  t.equal(new Set(results).size, 200, 'concurrent increments are atomic')
  t.equal(await cache.get('c'), 200)
  await cache.set('s', 'text')
  t.equal(await cache.incr('s'), undefined, 'incr on a value that is not an integer fails open')
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('buffered counters across two instances flush the exact total', async (t) => {
  const { app: a } = await cacheApp(t)
  const b = await buildApp(t, { prefix: a.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  let flushed = 0
  const flushes: number[] = []
  const onFlush = async (n: number) => { flushed += n; flushes.push(n) }
  const ca = a.cache.namespace('views').counter('post:1', { flushEvery: 100, flushInterval: '1h', onFlush })
  const cb = b.cache.namespace('views').counter('post:1', { flushEvery: 100, flushInterval: '1h', onFlush })
  for (let i = 0; i < 1050; i += 25) {
    await Promise.all(Array.from({ length: 25 }, (_, j) => ((i + j) % 2 === 0 ? ca : cb).incr()))
    await sleep(1) // let a started flush claim before the next burst
  }
  t.ok(await eventually(() => flushes.length >= 3), `flushed while counting, every ~100 (${flushes.join(',')})`)
  await ca.close()
  await cb.close()
  t.equal(flushed, 1050, 'nothing lost, nothing counted twice')
  await noKeyWithoutTtl(t, raw, a.redisSuite.prefix)
})

t.test('locks: a handle with release and extend; an expired holder cannot touch the next holder\'s lock', async (t) => {
  const { app } = await cacheApp(t)
  const first = await app.cache.lock('job', { ttl: 100 })
  t.ok(first, 'acquired')
  t.equal(await app.cache.lock('job', { ttl: 100 }), null, 'held')
  t.ok(await eventually(async () => (await raw.exists(first?.key ?? '')) === 0), 'expired')
  const second = await app.cache.lock('job', { ttl: '10s' })
  t.ok(second)
  t.not(second?.token, first?.token, 'a fresh token')
  t.equal(await first?.release(), false, 'the expired holder cannot release')
  t.equal(await first?.extend(5000), false, 'nor extend')
  t.equal(await second?.extend(20_000), true, 'the holder extends')
  t.ok(await raw.pttl(second?.key ?? '') > 15_000)
  t.equal(await second?.release(), true)
  await app.cache.lock('job2', { ttl: 200 })
  const started = Date.now()
  const waited = await app.cache.lock('job2', { ttl: '1s', wait: '2s' })
  t.ok(waited !== null && Date.now() - started >= 100, `a waiter gets the lock once the holder's TTL ends (${Date.now() - started}ms)`)
  await waited?.release()
  let ran = 0
  t.equal(await app.cache.withLock('w', async () => { ran++; return 'done' }), 'done')
  t.equal(ran, 1)
  const held = await app.cache.lock('w2', { ttl: '5s' })
  await t.rejects(app.cache.withLock('w2', async () => 'never', { wait: 50 }), { code: 'FRS_LOCK_TIMEOUT' })
  await held?.release()
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('deletePattern: 10,000 keys on every master, only under our prefix and namespace; globs escaped', async (t) => {
  const { app } = await cacheApp(t)
  const { app: other } = await cacheApp(t)
  const feed = app.cache.namespace('feed')
  const n = 10_000
  for (let i = 0; i < n; i += 1000) {
    await feed.setMany(Array.from({ length: 1000 }, (_, j) => [`user:${i + j}`, i + j] as const))
  }
  await feed.set('other:1', 'keep')
  await feed.set('user*[x]', 'literal')
  await app.cache.set('user:1', 'root namespace')
  await other.cache.namespace('feed').set('user:1', 'foreign prefix')
  t.equal(await feed.deletePattern('user:*'), n)
  t.equal(await feed.get('user:5'), undefined)
  t.equal(await feed.get('other:1'), 'keep')
  t.equal(await feed.get('user*[x]'), 'literal', 'a literal key with glob characters was not matched by user:*')
  t.equal(await app.cache.get('user:1'), 'root namespace', 'another namespace survives')
  t.equal(await other.cache.namespace('feed').get('user:1'), 'foreign prefix', 'another prefix survives')
  t.equal(await feed.deletePattern('user?[x]'), 0, 'glob characters other than * match only themselves')
  t.equal(await feed.deletePattern('user*[x]'), 1)
  t.equal((await scanKeys(raw, app.redisSuite.prefix)).filter((k) => k.includes(':feed:')).length, 1, 'only other:1 is left in the namespace')
})

t.test('Cluster: deletePattern reaches every master', { skip: !clusterMode }, async (t) => {
  const { app } = await cacheApp(t)
  await app.cache.setMany(Array.from({ length: 300 }, (_, i) => [`k${i}`, i] as const))
  t.equal(await app.cache.deletePattern('k*'), 300)
  t.same(await app.cache.getMany(['k0', 'k150', 'k299']), [undefined, undefined, undefined])
})

t.test('closing the app flushes what buffered counters hold', async (t) => {
  const { app } = await cacheApp(t)
  let flushed = 0
  const counter = app.cache.namespace('views').counter('p', { flushEvery: 1000, flushInterval: '1h', onFlush: async (n) => { flushed += n } })
  for (let i = 0; i < 7; i++) await counter.incr()
  t.equal(flushed, 0)
  await app.close()
  t.equal(flushed, 7, 'flushed on close, before the connection closed')
})

/** A stand-in for the database that `onFlush` writes to: it refuses writes once closed. */
function viewsTable () {
  const table = { open: true, views: 0, close: () => { table.open = false } }
  const write = async (n: number) => {
    if (!table.open) throw new Error('Database closed')
    table.views += n
  }
  return { table, write }
}

t.test('shutting down in the documented order: every count, including increments in flight, reaches onFlush', async (t) => {
  t.test('the database closed after app.close() resolves', async (t) => {
    const { app } = await cacheApp(t)
    const { table, write } = viewsTable()
    const counter = app.cache.counter('views', { flushEvery: 100, flushInterval: '1h', onFlush: write })
    const increments = Array.from({ length: 250 }, () => counter.incr()) // not awaited: in flight at close
    await app.close()
    table.close()
    t.equal((await Promise.all(increments)).length, 250)
    t.equal(table.views, 250, 'every increment reached the database')
    t.equal(await raw.exists(counter.key), 0, 'nothing left pending in Redis')
  })

  t.test('the database closed in an onClose hook that first awaits app.cache.close()', async (t) => {
    const { table, write } = viewsTable()
    const app = await buildApp(t, {}, async (app) => {
      await app.register(cachePlugin)
      app.addHook('onClose', async () => { await app.cache.close(); table.close() })
    })
    const counter = app.cache.counter('views', { flushEvery: 100, flushInterval: '1h', onFlush: write })
    for (let i = 0; i < 7; i++) await counter.incr()
    await app.close()
    t.equal(table.views, 7)
    t.equal(await raw.exists(counter.key), 0)
  })

  t.test('the pitfall: a plain onClose hook added after the suite runs first, and the total waits in Redis', async (t) => {
    const { table, write } = viewsTable()
    const app = await buildApp(t, {}, async (app) => {
      await app.register(cachePlugin)
      app.addHook('onClose', async () => { table.close() })
    })
    const counter = app.cache.counter('views', { flushEvery: 100, flushInterval: '1h', onFlush: write })
    for (let i = 0; i < 7; i++) await counter.incr()
    await app.close()
    t.equal(table.views, 0, 'the last flush found the database closed')
    t.equal(await raw.get(counter.key), '7', 'and gave its total back to Redis, for a later flush of this key')
    await raw.del(counter.key)
  })
})

t.test('a factory that resolves undefined rejects with FRS_CACHE_UNDEFINED and caches nothing', async (t) => {
  const { app } = await cacheApp(t)
  await t.rejects(app.cache.getOrSet('u', () => undefined, { lock: true }), { code: 'FRS_CACHE_UNDEFINED' })
  t.equal(await app.cache.getOrSet('u', () => null, { lock: true }), null, 'the lock was released; null is cached')
  t.equal(await app.cache.get('u'), null)
})
