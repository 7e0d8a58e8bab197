// The cache toolkit's local tier (`cache({ local })`): three instances on one Redis (each its
// own connections and subscription). Repeated reads come from memory; every change any
// instance makes (set, delete, expire, tags, namespace invalidation, deletePattern) drops the
// copies of the others once its message arrives, and the writer reads its own writes at once;
// a randomised writer against concurrent readers never lets an instance serve an older version
// after it heard of a newer one; nothing is served from memory while the subscription is down.
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { Cluster } from 'ioredis'
import type { Cache } from '../lib/cache/index.js'
import { cacheApp, eventually } from './fixtures/cache.js'
import { fuzzSeed, prng } from './fixtures/prng.js'
import { freshPrefix, rawClient, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

// A minute: longer than any test, so that only an invalidation can drop a copy.
const LOCAL = { local: { ttl: '1m' as const } }

async function instances (t: Test, n: number, opts: object = LOCAL): Promise<FastifyInstance[]> {
  const prefix = freshPrefix()
  const apps = await Promise.all(Array.from({ length: n }, async () => (await cacheApp(t, opts, { prefix })).app))
  t.ok(await eventually(() => apps.every((app) => tierOf(app.cache)?.live === true)), 'every instance subscribed')
  return apps
}
const tierOf = (cache: Cache) => cache.core.local
const heard = (cache: Cache): number => tierOf(cache)?.stats.invalidations ?? 0
const localHits = (cache: Cache, ns = 'default'): number => cache.stats().namespaces[ns]?.localHits ?? 0

/** Runs `change` on one instance and resolves once every other instance heard of it. */
async function changedEverywhere (apps: FastifyInstance[], by: number, change: () => Promise<unknown>, messages = 1): Promise<number> {
  const before = apps.map((app) => heard(app.cache))
  await change()
  const at = Date.now()
  const ok = await eventually(() => apps.every((app, i) => i === by || heard(app.cache) >= (before[i] as number) + messages))
  if (!ok) throw new Error('an instance did not hear of the change')
  return Date.now() - at
}

t.test('repeated reads come from memory; a change on another instance drops them there', async (t) => {
  const [a, b] = await instances(t, 2) as [FastifyInstance, FastifyInstance]
  // Heard first: a message still on its way drops the copy of a read that ran after the write.
  await changedEverywhere([a, b], 1, () => b.cache.set('k', 'v1', { tags: ['t1'] }))
  t.equal(await a.cache.get('k'), 'v1')
  t.equal(localHits(a.cache), 0, 'the first read went to Redis')
  t.equal(await a.cache.get('k'), 'v1')
  const fromRedis = await a.cache.getEntry('k', { local: false })
  t.match(await a.cache.getEntry('k'), { state: 'fresh', value: 'v1', storedAt: (fromRedis as { storedAt: number }).storedAt, ttl: 300_000, grace: 0, age: Number }, 'an entry from memory carries its metadata')
  t.ok(localHits(a.cache) >= 2, 'the next reads did not')
  const hits = a.cache.stats().namespaces.default?.hits as number
  t.equal(await a.cache.get('k', { local: false }), 'v1')
  t.equal(a.cache.stats().namespaces.default?.hits, hits + 1, 'local: false reads Redis')

  const bound: number[] = []
  const cases: Array<[string, () => Promise<unknown>, number?]> = [
    ['set', () => b.cache.set('k', 'v2', { tags: ['t1'] })],
    ['delete', () => b.cache.delete('k')],
    ['expire', () => b.cache.expire('k', '1h')],
    ['invalidateTags', () => b.cache.invalidateTags(['t1'])],
    ['invalidateAll', () => b.cache.invalidateAll()],
    ['deletePattern', () => b.cache.deletePattern('k*')]
  ]
  for (const [name, change] of cases) {
    await b.cache.set('k', `before ${name}`, { tags: ['t1'] })
    await eventually(async () => await a.cache.get('k') === `before ${name}`)
    await a.cache.get('k')
    t.equal(tierOf(a.cache)?.get(a.cache.key('k'), Date.now())?.item !== undefined, true, `${name}: a holds the value`)
    bound.push(await changedEverywhere([a, b], 1, change))
    t.equal(tierOf(a.cache)?.get(a.cache.key('k'), Date.now()), undefined, `${name} on b dropped a's copy`)
    t.equal(await a.cache.get('k'), await a.cache.get('k', { local: false }), `${name}: a reads what Redis holds`)
  }
  t.ok(bound.every((ms) => ms < 3000), 'every change was heard')

  // How long after a change resolved on b the copy on a is gone: 100 sets, polled every turn.
  const delays: number[] = []
  for (let i = 0; i < 100; i++) {
    await a.cache.get('k')
    const before = heard(a.cache)
    await b.cache.set('k', `v${i}`)
    const at = performance.now()
    while (heard(a.cache) === before) await new Promise((resolve) => setImmediate(resolve))
    delays.push(performance.now() - at)
  }
  delays.sort((x, y) => x - y)
  t.comment(`copies dropped after the call resolved: median ${delays[50]?.toFixed(2)} ms, max ${delays[99]?.toFixed(2)} ms (100 changes)`)
})

t.test('a namespace invalidation reaches only that namespace\'s copies; the writer reads its own writes', async (t) => {
  const [a, b] = await instances(t, 2) as [FastifyInstance, FastifyInstance]
  const feedA = a.cache.namespace('feed')
  // Strings: an integer without tags is stored bare, as a counter, which no namespace reaches.
  await changedEverywhere([a, b], 1, () => Promise.all([b.cache.namespace('feed').set('x', 'one'), b.cache.set('y', 'two')]), 2)
  t.equal(await feedA.get('x'), 'one')
  t.equal(await a.cache.get('y'), 'two')
  await changedEverywhere([a, b], 1, () => b.cache.namespace('feed').invalidateAll())
  t.equal(await feedA.get('x'), undefined, 'the namespace\'s entry is gone')
  const before = localHits(a.cache)
  t.equal(await a.cache.get('y'), 'two')
  t.equal(localHits(a.cache), before + 1, 'another namespace\'s copy was kept')
  // Read-your-writes: no wait for any message.
  for (let i = 0; i < 20; i++) {
    await a.cache.get('y')
    await a.cache.set('y', `v${i}`)
    t.equal(await a.cache.get('y'), `v${i}`)
  }
})

t.test('a randomised writer against concurrent readers: no instance serves an older version after it heard of a newer one', async (t) => {
  const apps = await instances(t, 3)
  const seed = fuzzSeed()
  const random = prng(seed)
  t.comment(`FUZZ_SEED=${seed}`)
  const [writer, ...readers] = apps as [FastifyInstance, ...FastifyInstance[]]
  let version = 0
  await writer.cache.set('doc', 0, { tags: ['doc'] })
  const violations: string[] = []
  const state = { running: true }
  let reads = 0
  const read = async (app: FastifyInstance, i: number): Promise<void> => {
    while (state.running) {
      const heardBefore = heard(app.cache)
      const known = acknowledged.filter((a) => a.heardBy[i] !== undefined && a.heardBy[i] <= heardBefore).at(-1)?.version ?? 0
      const value = await app.cache.get<number>('doc')
      reads++
      if (value !== undefined && value < known) violations.push(`instance ${i} read ${value} after hearing of ${known}`)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  // For each acknowledged write: the invalidation count at which each reader had heard of it.
  const acknowledged: Array<{ version: number, heardBy: Array<number | undefined> }> = []
  const readersDone = readers.map((app, i) => read(app, i))
  for (let n = 0; n < 60; n++) {
    const before = readers.map((app) => heard(app.cache))
    const v = ++version
    const op = random()
    if (op < 0.6) await writer.cache.set('doc', v, { tags: ['doc'] })
    else if (op < 0.8) { await writer.cache.invalidateTags(['doc']); await writer.cache.set('doc', v, { tags: ['doc'] }) } else { await writer.cache.delete('doc'); await writer.cache.set('doc', v, { tags: ['doc'] }) }
    const record = { version: v, heardBy: readers.map(() => undefined as number | undefined) }
    acknowledged.push(record)
    const messages = op < 0.6 ? 1 : 2
    await eventually(() => readers.every((app, i) => heard(app.cache) >= (before[i] as number) + messages))
    readers.forEach((app, i) => { record.heardBy[i] = heard(app.cache) })
    await new Promise((resolve) => setTimeout(resolve, random() * 15))
  }
  state.running = false
  await Promise.all(readersDone)
  t.same(violations, [], `${reads} reads, ${version} versions`)
  t.ok(readers.some((app) => localHits(app.cache) > 0), 'reads were served from memory meanwhile')
  for (const app of readers) t.equal(await app.cache.get('doc'), version, 'every instance ends on the last version')
})

t.test('nothing is served from memory while the subscription is down', async (t) => {
  const [a, b] = await instances(t, 2) as [FastifyInstance, FastifyInstance]
  await changedEverywhere([a, b], 1, () => b.cache.set('k', 'v1'))
  await a.cache.get('k')
  await a.cache.get('k')
  t.equal(localHits(a.cache), 1)
  // Kill every invalidation subscription on the servers: both tiers go down and drop what they hold.
  const servers = raw instanceof Cluster ? raw.nodes('master') : [raw]
  let killed = 0
  for (const server of servers) killed += await server.call('CLIENT', 'KILL', 'TYPE', 'pubsub') as number
  t.ok(killed >= 2, `subscriptions killed (${killed})`)
  t.ok(await eventually(() => tierOf(a.cache)?.live === false || tierOf(a.cache)?.size === 0), 'a let go of its copies')
  const during = localHits(a.cache)
  if (tierOf(a.cache)?.live === false) {
    await b.cache.set('k', 'v2')
    t.equal(await a.cache.get('k'), 'v2')
    t.equal(localHits(a.cache), during, 'read from Redis while down')
  }
  t.ok(await eventually(() => tierOf(a.cache)?.live === true && tierOf(b.cache)?.live === true, 5000), 'subscribed again')
  await changedEverywhere([a, b], 1, () => b.cache.set('k', 'v3'))
  t.equal(await a.cache.get('k'), 'v3')
  t.equal(await a.cache.get('k'), 'v3')
  t.equal(localHits(a.cache), during + 1, 'served from memory again')
})

t.test('options: local is refused with the bad key named; getOrSet options are checked', async (t) => {
  await t.rejects(cacheApp(t, { local: { mx: 5 } as never }), { code: 'FRS_INVALID_OPTION', message: /cache\.local\.mx.*max/s })
  await t.rejects(cacheApp(t, { local: { max: 0 } }), { code: 'FRS_INVALID_OPTION', message: /cache\.local\.max/ })
  await t.rejects(cacheApp(t, { local: 'yes' as never }), { code: 'FRS_INVALID_OPTION', message: /cache\.local/ })
  const { app } = await cacheApp(t, LOCAL)
  await t.rejects(app.cache.getOrSet('k', async () => 1, { tll: '1m' } as never), { code: 'FRS_INVALID_OPTION', message: /getOrSet\.tll.*ttl/s })
  await t.rejects(app.cache.get('k', { locl: false } as never), { code: 'FRS_INVALID_OPTION', message: /read\.locl/ })
  t.equal(await app.cache.getOrSet('k', async () => 1, { local: false }), 1)
})
