import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Cluster } from 'ioredis'
import { buildApp } from './fixtures/app.js'
import { clusterMode, rawClient, scanKeys, testRedis } from './fixtures/redis.js'
import { cacheApp, eventually, noKeyWithoutTtl } from './fixtures/cache.js'
import cachePlugin from '../plugins/cache.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

t.test('get / set / has / delete; null is a value, a miss is undefined', async (t) => {
  const { app } = await cacheApp(t)
  const cache = app.cache
  t.equal(await cache.get('a'), undefined, 'a miss')
  t.equal(await cache.has('a'), false)
  t.equal(await cache.set('a', null), true)
  t.equal(await cache.get('a'), null, 'null is a value')
  t.equal(await cache.has('a'), true)
  const value = { when: new Date('2020-01-02T03:04:05.678Z'), bytes: Buffer.from([0, 1, 255]), big: 2n ** 70n, nested: { list: [1, 'two', { three: 3 }] } }
  await cache.set('b', value)
  t.same(await cache.get('b'), value, 'rich values round-trip')
  t.ok((await cache.get<typeof value>('b'))?.when instanceof Date)
  t.equal(await cache.delete('b'), true)
  t.equal(await cache.delete('b'), false)
  t.equal(await cache.get('b'), undefined)
  await t.rejects(cache.set('c', undefined), { code: 'FRS_CACHE_UNDEFINED' }, 'undefined is refused')
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('add sets only when absent', async (t) => {
  const { app } = await cacheApp(t)
  t.equal(await app.cache.add('k', 1), true)
  t.equal(await app.cache.add('k', 2), false)
  t.equal(await app.cache.get('k'), 1)
  await app.cache.set('tagged', 'x', { tags: ['t'] })
  await app.cache.invalidateTags(['t'])
  t.equal(await app.cache.add('tagged', 'y'), true, 'an invalidated entry counts as absent')
  t.equal(await app.cache.get('tagged'), 'y')
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('getMany / setMany / deleteMany keep order and tell misses apart', async (t) => {
  const { app } = await cacheApp(t)
  t.equal(await app.cache.setMany({ a: 1, b: null, c: 'three' }), true)
  t.equal(await app.cache.setMany([['d', { four: 4 }]], { ttl: '1m' }), true)
  t.same(await app.cache.getMany(['d', 'missing', 'a', 'b', 'c']), [{ four: 4 }, undefined, 1, null, 'three'])
  t.equal(await app.cache.deleteMany(['a', 'missing', 'c']), 2)
  t.same(await app.cache.getMany(['a', 'b', 'c']), [undefined, null, undefined])
  t.same(await app.cache.getMany([]), [])
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('ttl / expire / touch / persist, with grace on top of ttl', async (t) => {
  const { app } = await cacheApp(t, { ttl: '1m' })
  const cache = app.cache
  await cache.set('k', 'v')
  const ttl = await cache.ttl('k')
  t.ok(ttl > 58_000 && ttl <= 60_000, `default ttl applies (${ttl})`)
  t.equal(await cache.ttl('missing'), -2)
  t.equal(await cache.expire('k', '10s'), true)
  t.ok(await cache.ttl('k') <= 10_000)
  t.equal(await cache.expire('missing', 1000), false)
  await cache.set('g', 'v', { ttl: '10s', grace: '20s' })
  const gttl = await cache.ttl('g')
  t.ok(gttl > 9_000 && gttl <= 10_000, `ttl reports the fresh part (${gttl})`)
  const pttl = await raw.pttl(cache.key('g'))
  t.ok(pttl > 29_000 && pttl <= 30_000, `the key lives ttl + grace (${pttl})`)
  await cache.expire('g', '1m')
  t.ok(await raw.pttl(cache.key('g')) > 79_000, 'expire keeps the grace on top')
  t.equal(await cache.touch('k'), true, 'touch renews with the entry\'s own ttl')
  t.ok(await cache.ttl('k') > 58_000)
  t.equal(await cache.touch('k', 5000), true)
  t.ok(await cache.ttl('k') <= 5000)
  t.equal(await cache.persist('k'), true)
  const kept = await cache.ttl('k')
  t.ok(kept > 29 * 86_400_000 && kept <= 30 * 86_400_000, `persist keeps an entry until maxTtl after its value was computed (${kept})`)
  t.equal(await cache.get('k'), 'v')
  await cache.set('n', 7)
  t.equal(await cache.persist('n'), true)
  t.equal(await cache.ttl('n'), -1, 'a bare counter loses its TTL')
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix, (k) => k === cache.key('n'))
})

t.test('a value past its ttl but inside grace reads as stale, then expires', async (t) => {
  const { app } = await cacheApp(t)
  await app.cache.set('k', 'v', { ttl: 100, grace: 300 })
  const fresh = await app.cache.getEntry('k')
  t.equal(fresh.state, 'fresh')
  if (fresh.state === 'fresh') t.ok(fresh.age !== undefined && fresh.age < 100 && fresh.storedAt !== undefined && fresh.ttl === 100 && fresh.grace === 300, 'metadata')
  let e = fresh
  while (e.state === 'fresh') e = await app.cache.getEntry('k')
  t.equal(e.state, 'stale')
  if (e.state === 'stale') t.ok(e.value === 'v' && (e.age ?? 0) >= 90, `stale with age ${e.age} (about the ttl; PTTL and TIME round differently)`)
  while (e.state === 'stale') e = await app.cache.getEntry('k')
  t.equal(e.state, 'miss')
})

t.test('namespaces are scoped; invalidateAll is O(1) and reaches nested namespaces only', async (t) => {
  const { app } = await cacheApp(t)
  const feed = app.cache.namespace('feed')
  const today = feed.namespace('today')
  const other = app.cache.namespace('other')
  await app.cache.set('k', 'root')
  await feed.set('k', 'feed')
  await today.set('k', 'today')
  await other.set('k', 'other')
  t.same(await Promise.all([app.cache, feed, today, other].map((c) => c.get('k'))), ['root', 'feed', 'today', 'other'], 'same key, four namespaces')
  t.not(feed.key('k'), app.cache.key('k'))
  t.equal(await feed.invalidateAll(), true)
  t.same(await Promise.all([app.cache, feed, today, other].map((c) => c.get('k'))), ['root', undefined, undefined, 'other'])
  await feed.set('k', 'again')
  t.equal(await feed.get('k'), 'again', 'writes after the invalidation are valid')
  await app.cache.invalidateAll()
  t.same(await Promise.all([app.cache, feed, other].map((c) => c.get('k'))), [undefined, undefined, undefined], 'the root reaches every namespace')
  t.throws(() => app.cache.namespace('a/b'), { code: 'FRS_INVALID_OPTION' })
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('invalidateAll is seen by another instance at once', async (t) => {
  const { app: a } = await cacheApp(t)
  const b = await buildApp(t, { prefix: a.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  await a.cache.namespace('feed').set('k', 'v')
  t.equal(await b.cache.namespace('feed').get('k'), 'v')
  await a.cache.namespace('feed').invalidateAll()
  t.equal(await b.cache.namespace('feed').get('k'), undefined)
})

t.test('tags: A(t1), B(t1,t2), C(t2); invalidate t1: A and B miss, C hits, on every instance', async (t) => {
  const { app } = await cacheApp(t)
  const b = await buildApp(t, { prefix: app.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  const cache = app.cache
  await cache.set('A', 'a', { tags: ['t1'] })
  await cache.set('B', 'b', { tags: ['t1', 't2'] })
  await cache.set('C', 'c', { tags: ['t2'] })
  await cache.namespace('ns').set('D', 'd', { tags: ['t1'] })
  t.same(await b.cache.getMany(['A', 'B', 'C']), ['a', 'b', 'c'])
  t.equal(await b.cache.invalidateTags(['t1']), true)
  t.same(await cache.getMany(['A', 'B', 'C']), [undefined, undefined, 'c'])
  t.same(await b.cache.getMany(['A', 'B', 'C']), [undefined, undefined, 'c'])
  t.equal(await cache.namespace('ns').get('D'), undefined, 'tags reach every namespace')
  await cache.set('A', 'a2', { tags: ['t1'] })
  t.equal(await cache.get('A'), 'a2', 'a later write with the tag is valid')
  await cache.invalidateTags(['t2'])
  const before = await scanKeys(raw, app.redisSuite.prefix)
  for (let i = 0; i < 5; i++) await cache.invalidateTags(['t1', 't2'])
  t.equal((await scanKeys(raw, app.redisSuite.prefix)).length, before.length, 'invalidation adds no keys: one counter per tag')
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('writeThrough: the source first; when it fails the cache is untouched', async (t) => {
  const { app } = await cacheApp(t)
  const db = new Map<string, unknown>()
  t.equal(await app.cache.writeThrough('u', { name: 'a' }, (v) => { db.set('u', v) }), true)
  t.same(db.get('u'), { name: 'a' })
  t.same(await app.cache.get('u'), { name: 'a' })
  await t.rejects(app.cache.writeThrough('u', { name: 'b' }, async () => { throw new Error('db down') }), { message: 'db down' })
  t.same(await app.cache.get('u'), { name: 'a' }, 'the old value stays')
  t.same(db.get('u'), { name: 'a' })
})

t.test('foreign or corrupt bytes under our key read as a miss with one warning', async (t) => {
  const { app, warnings } = await cacheApp(t)
  const cache = app.cache
  await raw.set(cache.key('x'), Buffer.from([0xff, 0x00, 0x01]), 'PX', 60_000)
  await raw.set(cache.key('y'), 'E12 bad header\n{}', 'PX', 60_000)
  await raw.set(cache.key('z'), 'p{not json', 'PX', 60_000)
  t.same(await cache.getMany(['x', 'y', 'z']), [undefined, undefined, undefined])
  t.equal(await cache.get('x'), undefined)
  t.equal(warnings.list.length, 1, 'warnings are rate-limited')
  t.match(warnings.list[0]?.msg, /could not be decoded/)
  t.equal(await cache.getOrSet('z', () => 'fixed'), 'fixed', 'getOrSet replaces it')
  t.equal(await cache.get('z'), 'fixed')
})

t.test('stats per namespace, and in the health output', async (t) => {
  const { app } = await cacheApp(t)
  await app.cache.set('a', 1)
  await app.cache.get('a')
  await app.cache.get('nope')
  await app.cache.namespace('feed').get('nope')
  const s = app.cache.stats()
  t.same(s.namespaces.default, { hits: 1, localHits: 0, misses: 1, staleHits: 0, errors: 0 })
  t.same(s.namespaces.feed, { hits: 0, localHits: 0, misses: 1, staleHits: 0, errors: 0 })
  t.equal(s.circuitOpen, false)
  const health = await app.redisHealth()
  t.same((health.cache as typeof s).namespaces.default, s.namespaces.default)
})

t.test('options are validated at registration, naming the option', async (t) => {
  await t.rejects(buildApp(t, {}, async (app) => { await app.register(cachePlugin, { ttl: 'soon' as never }) }), { code: 'FRS_INVALID_DURATION', message: /"ttl"/ })
  await t.rejects(buildApp(t, {}, async (app) => { await app.register(cachePlugin, { ttl: '1d', maxTtl: '1h' }) }), { code: 'FRS_INVALID_OPTION' })
  await t.rejects(buildApp(t, {}, async (app) => { await app.register(cachePlugin, { compression: 'gzip' as never }) }), { message: /compression/ })
  await t.rejects(buildApp(t, {}, async (app) => { await app.register(cachePlugin, { connection: 'nope' }) }), { code: 'FRS_UNKNOWN_CONNECTION' })
  const { app } = await cacheApp(t, { maxTtl: '1h' })
  await t.rejects(app.cache.set('k', 1, { ttl: '2h' }), { code: 'FRS_INVALID_OPTION' })
})

t.test('Cluster: entries spread over the masters', { skip: !clusterMode }, async (t) => {
  const { app } = await cacheApp(t)
  await app.cache.setMany(Array.from({ length: 60 }, (_, i) => [`k${i}`, i] as const))
  t.same(await app.cache.getMany(Array.from({ length: 60 }, (_, i) => `k${i}`)), Array.from({ length: 60 }, (_, i) => i))
})

t.test('round trips: a getOrSet hit sends one command on a standalone server; GET+PTTL and one script in parallel on a Cluster', async (t) => {
  const { app } = await cacheApp(t)
  const prefix = app.redisSuite.prefix
  await app.cache.getOrSet('k', () => 'v', { tags: ['t'] })
  const nodes = raw instanceof Cluster ? raw.nodes('master') : [raw]
  const monitors = await Promise.all(nodes.map((n) => n.monitor()))
  const seen: string[] = []
  for (const m of monitors) {
    m.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((a) => a.includes(prefix))) seen.push(String(args[0]).toLowerCase())
    })
  }
  await sleep(100)
  for (let i = 0; i < 10; i++) t.equal(await app.cache.getOrSet('k', () => 'other', { tags: ['t'] }), 'v')
  await eventually(() => seen.length >= (clusterMode ? 30 : 10), 1000)
  await sleep(100)
  await Promise.all(monitors.map((m) => m.disconnect()))
  const counts = seen.reduce<Record<string, number>>((acc, c) => { acc[c] = (acc[c] ?? 0) + 1; return acc }, {})
  t.same(counts, clusterMode ? { get: 10, pttl: 10, evalsha: 10 } : { evalsha: 10 }, JSON.stringify(counts))
})
