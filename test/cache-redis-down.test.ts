// Redis stopped and started again: its own file, since stopping the file's server affects every test in it.
import t from 'tap'
import { rawClient, testRedis } from './fixtures/redis.js'
import { cacheApp, eventually } from './fixtures/cache.js'

const redis = await testRedis()

t.test('with Redis down every operation fails open within the command timeout; caching resumes after restart', { skip: !redis.controllable }, async (t) => {
  const commandTimeout = 300
  const { app, warnings } = await cacheApp(t, { failureThreshold: 3, circuitOpenFor: '300ms', warnInterval: '1m' }, { commandTimeout })
  const cache = app.cache
  await cache.set('k', 'cached')
  t.equal(await cache.get('k'), 'cached')

  await redis.stop()
  t.teardown(async () => { if (!(await cacheReachable())) await redis.start() })
  let calls = 0
  const factory = async () => { calls++; return `fresh ${calls}` }
  for (let i = 0; i < 5; i++) {
    const started = Date.now()
    const r = await cache.getOrSetEntry('k', factory, { lock: true })
    const took = Date.now() - started
    t.equal(r.state, 'bypass', `call ${i}: served by the factory, marked bypass`)
    t.ok(took <= commandTimeout + 100, `call ${i} took ${took}ms (command timeout ${commandTimeout}ms)`)
  }
  t.equal(calls, 5)
  const started = Date.now()
  t.same(await Promise.all([cache.get('k'), cache.set('k', 1), cache.has('k'), cache.delete('k'), cache.getMany(['a', 'b']),
    cache.invalidateTags(['t']), cache.namespace('n').invalidateAll(), cache.incr('c'), cache.ttl('k'), cache.deletePattern('x*'),
    cache.writeThrough('w', 1, () => {})]),
  [undefined, false, false, false, [undefined, undefined], false, false, undefined, -2, 0, false], 'every operation fails open')
  t.ok(Date.now() - started <= commandTimeout + 100)
  t.equal(cache.stats().circuitOpen, true, 'the circuit opened after repeated failures')
  t.ok((cache.stats().namespaces.default?.errors ?? 0) >= 10, 'errors are counted')
  t.equal(warnings.list.filter((w) => /failing open/.test(w.msg)).length, 1, 'one warning per interval')

  await redis.start()
  t.ok(await eventually(async () => (await cache.getOrSetEntry('k2', factory)).state === 'miss', 15_000), 'caching resumes: a miss is stored again')
  t.same((await cache.getOrSetEntry('k2', factory)).state, 'hit')
  t.equal(cache.stats().circuitOpen, false)

  async function cacheReachable (): Promise<boolean> {
    return (await cache.set('probe', 1)) === true
  }
})

t.test('a stalled Redis (no replies): getOrSet answers within the command timeout', { skip: redis.mode !== 'standalone' }, async (t) => {
  const { app } = await cacheApp(t, { circuitOpenFor: '300ms' }, { commandTimeout: 200 })
  const admin = rawClient(redis)
  t.teardown(() => admin.quit())
  await admin.client('PAUSE', 1500, 'ALL')
  const started = Date.now()
  const r = await app.cache.getOrSetEntry('k', () => 'from the source')
  const took = Date.now() - started
  t.same([r.state, r.value], ['bypass', 'from the source'])
  t.ok(took >= 150 && took <= 400, `took ${took}ms with a 200ms command timeout`)
  t.equal(await app.cache.get('k'), undefined, 'get fails open too')
  t.ok(await eventually(async () => (await app.cache.getOrSetEntry('k', () => 'x')).state !== 'bypass', 5000), 'works again after the pause')
})
