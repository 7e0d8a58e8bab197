// An invalidation is final: no deletePattern, TTL change or in-process coalescing makes an
// invalidated value visible again, and lock waiters learn at once that the holder gave up.
// Every test runs two app processes on one Redis (standalone, or the Cluster).
import t from 'tap'
import { cacheProcs } from '../fixtures/cache-procs.js'
import { eventually } from '../fixtures/cache.js'
import { needsRedis, rawClient, scanKeys, testRedis } from '../fixtures/redis.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

interface Got { value?: unknown }

t.test('deletePattern removes no invalidation record and no lock, whatever the glob and namespace', { skip: needsRedis('two app processes share one Redis') }, async (t) => {
  const { procs: [a, b], prefix } = await cacheProcs(t, 2)
  if (!a || !b) throw new Error('two processes')
  await a.call('set', { ns: ['blog'], key: 'post', value: 'draft post', opts: { tags: ['draft'] } })
  await a.call('set', { ns: ['feed', 'today'], key: 'top', value: 'old top' })
  await a.call('set', { key: 'root', value: 'root value', opts: { tags: ['draft'] } })
  t.equal(await a.call('lockName', { name: 'job' }), true, 'a lock of the root')
  t.equal(await a.call('lockName', { ns: ['feed'], name: 'job' }), true, 'a lock of a namespace')
  await b.call('invalidateTags', { tags: ['draft'] })
  await b.call('invalidateAll', { ns: ['feed', 'today'] })
  // Every glob that could have reached a record or a lock, on the root and on a namespace.
  for (const glob of ['*draft', '*gen*', '*lock*', '*job*', '*']) {
    await a.call('deletePattern', { glob })
    await a.call('deletePattern', { ns: ['feed'], glob })
  }
  const left = await scanKeys(raw, prefix)
  t.equal(left.length, 6, `the two namespace entries, two invalidation records and two locks are left: ${left.join(' ')}`)
  t.same(await b.call<Got>('get', { ns: ['blog'], key: 'post' }), { value: undefined }, 'the tag invalidation holds')
  t.same(await b.call<Got>('get', { ns: ['feed', 'today'], key: 'top' }), { value: undefined }, 'the namespace invalidation holds')
  t.equal(await b.call('lockName', { name: 'job' }), false, 'the root lock is still held')
  t.equal(await b.call('lockName', { ns: ['feed'], name: 'job' }), false, 'the namespace lock is still held')
})

t.test('expire, touch and persist cannot make an entry outlive the record that invalidated it', { skip: needsRedis('two app processes share one Redis') }, async (t) => {
  // maxTtl is short, so that the invalidation records expire within the test.
  const { procs: [a, b], prefix } = await cacheProcs(t, 2, { ttl: 300, maxTtl: 1500 })
  if (!a || !b) throw new Error('two processes')
  for (const key of ['p', 'e', 't']) await a.call('set', { ns: ['n'], key, value: key, opts: { tags: ['x'] } })
  await a.call('set', { ns: ['m'], key: 'q', value: 'q' })
  await b.call('invalidateTags', { tags: ['x'] })
  await b.call('invalidateAll', { ns: ['m'] })
  t.equal(await a.call('persist', { ns: ['n'], key: 'p' }), true)
  await a.call('expire', { ns: ['n'], key: 'e', ms: 3_600_000 })
  await a.call('touch', { ns: ['n'], key: 't', ms: 3_600_000 })
  await a.call('persist', { ns: ['m'], key: 'q' })
  for (const key of await scanKeys(raw, prefix)) {
    const pttl = await raw.pttl(key)
    t.ok(pttl > 0 && pttl <= (key.includes('gen') ? 1650 : 1500), `${key} lives at most maxTtl (${pttl} ms)`)
  }
  t.ok(await eventually(async () => !(await scanKeys(raw, prefix)).some((k) => k.includes('gen')), 5000), 'the invalidation records expired')
  for (const [ns, key] of [['n', 'p'], ['n', 'e'], ['n', 't'], ['m', 'q']] as const) {
    t.same(await b.call<Got>('get', { ns: [ns], key }), { value: undefined }, `${ns}/${key} stays invalid`)
  }
})

t.test('read-your-writes: a getOrSet after a write or invalidation has resolved never joins a call that started before it', { skip: needsRedis('two app processes share one Redis') }, async (t) => {
  const { procs: [a, b] } = await cacheProcs(t, 2)
  if (!a || !b) throw new Error('two processes')
  const writes = [
    { op: 'invalidateTags', tags: ['x'] },
    { op: 'invalidateAll' },
    { op: 'delete', key: 'k' },
    { op: 'set', key: 'k', value: 'written', opts: { tags: ['x'] } },
    { op: 'deletePattern', glob: 'k' }
  ]
  for (const [i, write] of writes.entries()) {
    const ns = [`s${i}`]
    const r = await a.call<{ first: unknown, second: unknown }>('overlap', { ns, key: 'k', before: 'before', after: 'after', delay: 150, write: { ...write, ns }, opts: { tags: ['x'] } })
    t.equal(r.first, 'before', `${write.op}: the call that was running gets its own value`)
    const expected = write.op === 'set' ? 'written' : 'after'
    t.equal(r.second, expected, `${write.op}: the call after it gets a value read after it`)
    t.same(await b.call<Got>('get', { ns, key: 'k' }), { value: expected }, `${write.op}: the other instance reads the same`)
  }
})

t.test('lock waiters on another instance stop waiting as soon as the holder gives up (skip, throw)', { skip: needsRedis('two app processes share one Redis') }, async (t) => {
  const { procs: [a, b], prefix } = await cacheProcs(t, 2, { factoryTimeout: '4s' })
  if (!a || !b) throw new Error('two processes')
  for (const how of [{ skip: true }, { throws: true }]) {
    const key = 'skip' in how ? 'skipped' : 'thrown'
    const holder = a.call<{ value?: unknown, error?: string }>('getOrSet', { key, factory: { value: 'holder', delay: 300, ...how }, opts: { lock: true } })
    t.ok(await eventually(async () => (await scanKeys(raw, prefix)).some((k) => k.includes('lock') || k.includes('fill'))), 'the holder has the lock')
    const waiter = await b.call<{ value: unknown, state: string, ms: number }>('getOrSet', { key, factory: { value: 'waiter' }, opts: { lock: true } })
    t.same([waiter.value, waiter.state], ['waiter', 'miss'], 'the waiter computed its own value')
    t.ok(waiter.ms < 1000, `${key}: the waiter waited for the holder only (${waiter.ms} ms, lockWait is 4 s)`)
    await holder
  }
})
