import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { buildApp } from './fixtures/app.js'
import { rawClient, testRedis } from './fixtures/redis.js'
import { cacheApp, eventually, noKeyWithoutTtl } from './fixtures/cache.js'
import cachePlugin from '../plugins/cache.js'
import { fillLockKey } from '../lib/cache/loader.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

t.test('1,000 concurrent cold getOrSet calls on one key: one factory call, one value for all', async (t) => {
  const { app } = await cacheApp(t)
  let calls = 0
  const factory = async () => {
    calls++
    await sleep(30)
    return { n: calls, at: Date.now() }
  }
  const results = await Promise.all(Array.from({ length: 1000 }, () => app.cache.getOrSetEntry('hot', factory)))
  t.equal(calls, 1, 'the factory ran once')
  t.ok(results.every((r) => r.value === results[0]?.value), 'every caller got the same object')
  t.ok(results.every((r) => r.state === 'miss'))
  const again = await app.cache.getOrSetEntry('hot', factory)
  t.equal(again.state, 'hit')
  t.same(again.value, results[0]?.value)
  t.equal(calls, 1)
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('two app instances with the lock: the factory runs once across them', async (t) => {
  const { app: a } = await cacheApp(t)
  const b = await buildApp(t, { prefix: a.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  t.not(a.redis, b.redis, 'separate clients')
  let calls = 0
  const factory = async () => { calls++; await sleep(100); return 'computed' }
  const calls500 = (app: typeof a) => Array.from({ length: 500 }, () => app.cache.getOrSet('shared', factory, { lock: true }))
  const values = await Promise.all([...calls500(a), ...calls500(b)])
  t.equal(calls, 1, 'once across two instances')
  t.ok(values.every((v) => v === 'computed'))

  // Without the lock each instance computes once (single-flight is per process).
  let plain = 0
  await Promise.all([a, b].map((app) => app.cache.getOrSet('plain', async () => { plain++; await sleep(100); return 1 })))
  t.equal(plain, 2, 'without the lock: once per instance')
  await noKeyWithoutTtl(t, raw, a.redisSuite.prefix)
})

t.test('lock waiters compute themselves when the holder takes longer than the wait (fail open)', async (t) => {
  const { app: a } = await cacheApp(t)
  const b = await buildApp(t, { prefix: a.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const slow = a.cache.getOrSet('k', async () => { await gate; return 'slow' }, { lock: true })
  await eventually(async () => (await raw.exists(fillLockKey(a.cache, a.cache.key('k')))) === 1)
  const started = Date.now()
  const fast = await b.cache.getOrSetEntry('k', () => 'fast', { lock: { wait: 200 } })
  t.equal(fast.value, 'fast')
  t.ok(Date.now() - started >= 150 && Date.now() - started < 1000, `waited about 200ms (${Date.now() - started})`)
  release()
  t.equal(await slow, 'slow')
})

t.test('stale-while-revalidate: 100 concurrent readers are served at once, one refresh runs', async (t) => {
  const { app } = await cacheApp(t)
  let calls = 0
  let release = (): void => {}
  const factory = async () => {
    calls++
    if (calls > 1) await new Promise<void>((resolve) => { release = resolve })
    return `v${calls}`
  }
  await app.cache.getOrSet('k', factory, { ttl: 50, grace: '1m' })
  t.ok(await eventually(async () => (await app.cache.getEntry('k')).state === 'stale'), 'the entry went stale')
  const results = await Promise.all(Array.from({ length: 100 }, () => app.cache.getOrSetEntry('k', factory, { ttl: 50, grace: '1m' })))
  t.ok(results.every((r) => r.state === 'stale' && r.value === 'v1'), 'all served the stale value while the refresh is still running')
  t.equal(calls, 2, 'exactly one refresh')
  release()
  t.ok(await eventually(async () => (await app.cache.get('k')) === 'v2'), 'the refresh was stored')
  t.equal(calls, 2)
  t.ok((app.cache.stats().namespaces.default?.staleHits ?? 0) >= 100, 'counted as stale hits')
  await noKeyWithoutTtl(t, raw, app.redisSuite.prefix)
})

t.test('a failed factory is not cached, releases its lock, and the next caller retries', async (t) => {
  const { app } = await cacheApp(t)
  let calls = 0
  const failing = async () => { calls++; throw new Error('source down') }
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => app.cache.getOrSet('k', failing, { lock: true })))
  t.ok(results.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'source down'), 'every waiting caller gets the error')
  t.equal(calls, 1, 'shared by single-flight')
  t.equal(await app.cache.get('k'), undefined, 'nothing cached')
  t.equal(await raw.exists(fillLockKey(app.cache, app.cache.key('k'))), 0, 'the lock is released')
  t.equal(await app.cache.getOrSet('k', () => 'ok', { lock: true }), 'ok', 'the next caller computes at once')
  t.equal(await app.cache.get('k'), 'ok')
})

t.test('a factory timeout rejects with FRS_CACHE_FACTORY_TIMEOUT and caches nothing', async (t) => {
  const { app } = await cacheApp(t, { factoryTimeout: '100ms' })
  const started = Date.now()
  await t.rejects(app.cache.getOrSet('k', () => sleep(1000).then(() => 'late')), { code: 'FRS_CACHE_FACTORY_TIMEOUT' })
  t.ok(Date.now() - started < 500, 'the default factoryTimeout applies')
  await t.rejects(app.cache.getOrSet('k2', () => sleep(1000).then(() => 'late'), { timeout: 50 }), { code: 'FRS_CACHE_FACTORY_TIMEOUT' })
  t.equal(await app.cache.get('k'), undefined)
  t.equal(await app.cache.getOrSet('k', () => 'now'), 'now')
})

t.test('stale-if-error: a failing refresh keeps serving the stale value', async (t) => {
  const { app, warnings } = await cacheApp(t)
  await app.cache.set('k', 'old', { ttl: 30, grace: '1m' })
  t.ok(await eventually(async () => (await app.cache.getEntry('k')).state === 'stale'))
  let calls = 0
  const r = await app.cache.getOrSetEntry('k', () => { calls++; throw new Error('boom') }, { grace: '1m' })
  t.same([r.state, r.value], ['stale', 'old'])
  t.ok(await eventually(() => calls === 1 && warnings.list.length > 0), 'the refresh failed and was logged')
  t.equal(await app.cache.get('k'), 'old', 'the stale value stays')
  await t.rejects(app.cache.getOrSet('cold', () => { throw new Error('boom') }), { message: 'boom' }, 'without a stale value the error reaches the caller')
})

t.test('the factory decides from its result: skip, ttl, tags', async (t) => {
  const { app } = await cacheApp(t)
  t.equal(await app.cache.getOrSet('a', (ctx) => { ctx.skip(); return 'not cached' }), 'not cached')
  t.equal(await app.cache.get('a'), undefined)
  await app.cache.getOrSet('b', (ctx) => { ctx.ttl = '2s'; ctx.tags = ['user:1']; return 'b' }, { ttl: '1h' })
  const ttl = await app.cache.ttl('b')
  t.ok(ttl > 0 && ttl <= 2000, `ttl from the factory (${ttl})`)
  await app.cache.invalidateTags(['user:1'])
  t.equal(await app.cache.get('b'), undefined, 'tags from the factory apply')
  await app.cache.set('c', 'old', { ttl: 30, grace: '1m' })
  await eventually(async () => (await app.cache.getEntry('c')).state === 'stale')
  let seen: unknown
  await app.cache.getOrSet('c', (ctx) => { seen = ctx.stale; return 'new' }, { grace: '1m' })
  t.ok(await eventually(async () => (await app.cache.get('c')) === 'new'))
  t.equal(seen, 'old', 'the factory sees the stale value it refreshes')
})

t.test('an invalidation during a running factory: its value is not served as fresh afterwards', async (t) => {
  const { app } = await cacheApp(t)
  const b = await buildApp(t, { prefix: app.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  let release = (): void => {}
  const started = new Promise<void>((resolve) => {
    const p = app.cache.getOrSet('k', async () => {
      resolve()
      await new Promise<void>((resolve) => { release = resolve })
      return 'computed before the invalidation'
    }, { tags: ['t'] })
    t.teardown(() => p)
  })
  await started
  await b.cache.invalidateTags(['t']) // another instance invalidates while the factory runs
  release()
  t.ok(await eventually(async () => (await app.cache.getEntry('k')).state === 'miss'), 'the late write reads as a miss')
  // Tags set from the result (ctx.tags) are protected the same way.
  let release2 = (): void => {}
  let running2 = false
  const p2 = app.cache.getOrSet('k2', async (ctx) => {
    running2 = true
    await new Promise<void>((resolve) => { release2 = resolve })
    ctx.tags = ['t2']
    return 'x'
  })
  await eventually(() => running2)
  await app.cache.namespace('x').invalidateTags(['t2'])
  release2()
  t.equal(await p2, 'x', 'the caller still gets its value')
  t.equal(await app.cache.get('k2'), undefined, 'but it is not served afterwards')
  // The same via the getEntry / setEntry primitives.
  const read = await app.cache.getEntry('k3')
  t.equal(read.state, 'miss')
  await app.cache.invalidateTags(['t3'])
  await app.cache.setEntry('k3', 'v', { tags: ['t3'], since: read.state === 'miss' ? read.readAt : '' })
  t.equal(await app.cache.get('k3'), undefined, 'setEntry({ since }) honours invalidations after the read')
  await app.cache.setEntry('k3', 'v', { tags: ['t3'] })
  t.equal(await app.cache.get('k3'), 'v')
})

t.test('stale-while-revalidate with the lock: one refresh across two instances', async (t) => {
  const { app: a } = await cacheApp(t)
  const b = await buildApp(t, { prefix: a.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  await a.cache.set('k', 'old', { ttl: 30, grace: '1m' })
  t.ok(await eventually(async () => (await a.cache.getEntry('k')).state === 'stale'))
  let calls = 0
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const factory = async () => { calls++; await gate; return 'new' }
  const results = await Promise.all([a, b].flatMap((app) => Array.from({ length: 50 }, () => app.cache.getOrSetEntry('k', factory, { grace: '1m', lock: true }))))
  t.ok(results.every((r) => r.state === 'stale' && r.value === 'old'), 'all 100 served stale at once')
  t.ok(await eventually(() => calls >= 1))
  await sleep(100) // give the other instance's refresh a chance to (wrongly) start
  t.equal(calls, 1, 'one refresh overall')
  release()
  t.ok(await eventually(async () => (await b.cache.get('k')) === 'new'))
})
t.test('writeThrough refuses undefined before persisting', async (t) => {
  const { app } = await cacheApp(t)
  let persisted = false
  await t.rejects(app.cache.writeThrough('k', undefined, () => { persisted = true }), { code: 'FRS_CACHE_UNDEFINED' })
  t.equal(persisted, false)
})
