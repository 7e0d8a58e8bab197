import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { BufferedCounter, incrKeepTtl } from '../lib/cache/counter.js'
import type { BufferedCounterOptions } from '../lib/cache/counter.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, freshPrefix, rawClient, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

async function waitUntil (what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await sleep(5)
  }
}

function counterKey (app: FastifyInstance, name: string): string {
  return app.redisSuite.keyspace('cache', 'counters').key(name)
}

function sum (values: number[]): number {
  return values.reduce((a, b) => a + b, 0)
}

t.test('incrKeepTtl creates a missing counter with the TTL and keeps an existing TTL', async (t) => {
  const app = await buildApp(t)
  const key = counterKey(app, 'views')
  t.equal(await incrKeepTtl(app.redis, key, 5, 60_000), 5, 'a missing key starts from 0')
  let ttl = await app.redis.pttl(key)
  t.ok(ttl > 55_000 && ttl <= 60_000, `created with the TTL (${ttl})`)
  t.equal(await app.redis.get(key), '5', 'stored as a raw integer')

  await app.redis.pexpire(key, 300_000)
  t.equal(await incrKeepTtl(app.redis, key, -2, 1000), 3, 'negative steps decrement')
  ttl = await app.redis.pttl(key)
  t.ok(ttl > 290_000, `the existing TTL is kept, not reset to 1000 (${ttl})`)

  await app.redis.pexpire(key, 30)
  await waitUntil('the counter expired', async () => (await app.redis.exists(key)) === 0)
  t.equal(await incrKeepTtl(app.redis, key, 1, 60_000), 1, 'an expired counter starts again from 0')
  ttl = await app.redis.pttl(key)
  t.ok(ttl > 55_000, `and gets a TTL again (${ttl})`)

  // A key the user made persistent on purpose stays so: "keep the key's TTL".
  const kept = counterKey(app, 'persistent')
  await app.redis.set(kept, '10')
  t.equal(await incrKeepTtl(app.redis, kept, 1, 1000), 11)
  t.equal(await app.redis.pttl(kept), -1, 'no TTL forced onto a key that had none')

  const text = counterKey(app, 'text')
  await app.redis.set(text, 'hello', 'PX', 60_000)
  await t.rejects(incrKeepTtl(app.redis, text, 1, 1000), /not an integer/, 'a non-integer value is refused by Redis')
  t.equal(await app.redis.get(text), 'hello', 'and left alone')

  await t.rejects(incrKeepTtl(app.redis, key, 1.5, 1000), { code: 'FRS_INVALID_OPTION', message: /"by"/ })
  await t.rejects(incrKeepTtl(app.redis, key, 1, 0), { code: 'FRS_INVALID_OPTION', message: /"ttlMs"/ })
  await assertKeysHaveTtl(t, app.redis, app.redisSuite.prefix, (k) => k === kept)
})

t.test('incrKeepTtl under 500 concurrent calls on a missing key: exact total, TTL set', async (t) => {
  const prefix = freshPrefix()
  const apps = [await buildApp(t, { prefix }), await buildApp(t, { prefix })]
  const key = counterKey(apps[0] as FastifyInstance, 'race')
  const values = await Promise.all(Array.from({ length: 500 }, (_, i) => incrKeepTtl((apps[i % 2] as FastifyInstance).redis, key, 1, 60_000)))
  t.same([...values].sort((a, b) => a - b), Array.from({ length: 500 }, (_, i) => i + 1), 'every call saw its own value')
  t.ok(await apps[0]?.redis.pttl(key) as number > 0, 'whichever call created the key gave it a TTL')
  await assertKeysHaveTtl(t, (apps[0] as FastifyInstance).redis, prefix)
})

function counter (app: FastifyInstance, key: string, opts: Partial<BufferedCounterOptions> & Pick<BufferedCounterOptions, 'onFlush'>): BufferedCounter {
  return new BufferedCounter({ client: app.redis, key, flushEvery: 100, flushInterval: 60_000, ...opts })
}

t.test('a buffered counter hands over its total every flushEvery increments', async (t) => {
  const app = await buildApp(t)
  const key = counterKey(app, 'every')
  const totals: number[] = []
  const c = counter(app, key, { onFlush: async (n) => { totals.push(n) } })
  t.teardown(() => c.close())
  for (let i = 0; i < 99; i++) await c.incr()
  t.same(totals, [], 'nothing handed over before 100')
  t.equal(await app.redis.get(key), '99', 'the pending total lives in Redis')
  t.ok(await app.redis.pttl(key) > 0, 'with a TTL')
  t.equal(await c.incr(), 100)
  await waitUntil('the 100th increment flushed', () => totals.length === 1)
  t.same(totals, [100])
  t.equal(await app.redis.exists(key), 0, 'the claim removed the pending total')
  await c.incr(7)
  t.equal(await c.flush(), 7, 'flush() hands over what is pending')
  t.equal(await c.flush(), 0, 'and then nothing')
  t.same(totals, [100, 7], 'an empty flush does not call onFlush')
  await c.incr(3)
  t.equal(await c.close(), 3, 'close() flushes')
  await t.rejects(c.incr(), { code: 'FRS_COUNTER_CLOSED' })
  t.same(totals, [100, 7, 3])
})

t.test('a buffered counter flushes what is pending every flushInterval', async (t) => {
  const app = await buildApp(t)
  const totals: number[] = []
  const c = counter(app, counterKey(app, 'interval'), { flushEvery: 1_000_000, flushInterval: 30, onFlush: async (n) => { totals.push(n) } })
  t.teardown(() => c.close())
  await Promise.all([c.incr(), c.incr(2), c.incr(4)])
  await waitUntil('the timer flushed', () => sum(totals) === 7)
  t.equal(sum(totals), 7, `handed over ${totals.join(' + ')} without reaching flushEvery`)
  await c.incr(5)
  await waitUntil('the timer flushed again', () => sum(totals) === 12)
  t.equal(sum(totals), 12)
})

t.test('two instances, 1,000 concurrent increments, random flushes: the totals add up to exactly 1,000', async (t) => {
  const prefix = freshPrefix()
  const apps = [await buildApp(t, { prefix }), await buildApp(t, { prefix })]
  const key = counterKey(apps[0] as FastifyInstance, 'views')
  const totals: number[][] = [[], []]
  const counters = apps.map((app, i) => counter(app, key, {
    flushInterval: 15,
    onFlush: async (n) => {
      await sleep(Math.random() * 3)
      totals[i]?.push(n)
    }
  }))
  await Promise.all(Array.from({ length: 1000 }, async () => {
    // Spread over ~100 ms so that increments, threshold flushes, timer flushes and explicit
    // flushes of both instances interleave in Redis.
    await sleep(Math.random() * 100)
    const c = counters[Math.random() < 0.5 ? 0 : 1] as BufferedCounter
    await Promise.all([c.incr(), Math.random() < 0.03 ? c.flush() : 0])
  }))
  await Promise.all(counters.map((c) => c.close()))
  const all = [...(totals[0] as number[]), ...(totals[1] as number[])]
  t.equal(sum(all), 1000, `exactly 1,000 over ${all.length} flushes`)
  t.ok((totals[0] as number[]).length > 0 && (totals[1] as number[]).length > 0, `both instances flushed (${totals[0]?.length}, ${totals[1]?.length})`)
  t.equal(await apps[0]?.redis.exists(key), 0, 'nothing left pending')
})

t.test('a failing onFlush gives its total back: nothing is lost across two instances', async (t) => {
  const prefix = freshPrefix()
  const apps = [await buildApp(t, { prefix }), await buildApp(t, { prefix })]
  const key = counterKey(apps[0] as FastifyInstance, 'flaky')
  const done: number[] = []
  let calls = 0
  let failures = 0
  let mode: 'down' | 'flaky' = 'down'
  const warnings: unknown[] = []
  const counters = apps.map((app) => counter(app, key, {
    flushEvery: 50,
    flushInterval: 10,
    logger: { warn: (obj) => { warnings.push(obj) } },
    onFlush: async (n) => {
      await sleep(Math.random() * 3)
      if (mode === 'down' || (mode === 'flaky' && calls++ % 2 === 0)) {
        failures++
        throw new Error('database down')
      }
      done.push(n)
    }
  }))
  await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
    await sleep(Math.random() * 20)
    const c = counters[i % 2] as BufferedCounter
    await Promise.all([c.incr(), Math.random() < 0.03 ? c.flush().catch(() => 0) : 0])
  }))
  await waitUntil('a background flush (threshold or timer) failed and was logged', () => warnings.length > 0)
  t.ok(failures > 0, `onFlush failed ${failures} times`)
  t.same(done, [], 'nothing handed over while the database is down')
  // Every failed claim went back: Redis holds all of it, give or take a claim in flight.
  await waitUntil('all 1,000 are back in Redis', async () => Number(await apps[0]?.redis.get(key) ?? 0) === 1000)
  mode = 'flaky'
  await waitUntil('the timers handed over the rest', () => sum(done) >= 1000)
  await Promise.all(counters.map((c) => c.close()))
  t.ok(calls > 1, `${calls} flushes while flaky`)
  t.equal(sum(done), 1000, 'every increment handed over exactly once')
  t.equal(await apps[0]?.redis.exists(key), 0)
})

t.test('a claim that cannot go back to Redis is held in memory and handed over next time', async (t) => {
  const client = rawClient(redis)
  t.teardown(() => client.disconnect())
  const key = `${freshPrefix()}:cache:default:v1:held`
  const done: number[] = []
  let fail = true
  const c = new BufferedCounter({
    client,
    key,
    flushEvery: 1000,
    flushInterval: 60_000,
    onFlush: async (n) => {
      if (fail) {
        client.disconnect() // Redis unreachable for the give-back
        throw new Error('database down')
      }
      done.push(n)
    }
  })
  t.teardown(() => c.close().catch(() => 0))
  await c.incr(30)
  await t.rejects(c.flush(), /database down/)
  t.equal(await client.exists(key).catch(() => -1), -1, 'Redis unreachable from this client')
  await client.connect()
  t.equal(await client.exists(key), 0, 'the claim is not back in Redis')
  fail = false
  await c.incr(5)
  t.equal(await c.flush(), 35, 'the held 30 go with the next flush')
  t.same(done, [35])
})

t.test('bad options are refused, naming the option', async (t) => {
  const app = await buildApp(t)
  const base = { client: app.redis, key: 'x:y', flushEvery: 10, flushInterval: 1000, onFlush: async () => {} }
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ flushEvery: 0 }, /"flushEvery"/],
    [{ flushInterval: '1s' }, /"flushInterval"/],
    [{ ttl: 500 }, /"ttl"/],
    [{ key: '' }, /"key"/],
    [{ onFlush: null }, /"onFlush"/],
    [{ client: {} }, /"client"/]
  ]
  for (const [patch, message] of bad) {
    t.throws(() => new BufferedCounter({ ...base, ...patch } as unknown as BufferedCounterOptions), { code: 'FRS_INVALID_OPTION', message })
  }
  const c = new BufferedCounter(base)
  await t.rejects(c.incr(0), { code: 'FRS_INVALID_OPTION', message: /"by"/ })
  await c.close()
})
