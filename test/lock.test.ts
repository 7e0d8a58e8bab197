import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { acquireLock, withLock } from '../lib/cache/lock.js'
import type { LockHandle } from '../lib/cache/lock.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, freshPrefix } from './fixtures/redis.js'

async function waitUntil (what: string, check: () => Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await sleep(5)
  }
}

function lockKey (app: FastifyInstance, name: string): string {
  return app.redisSuite.keyspace('cache', 'locks').key('lock', name)
}

t.test('acquire is exclusive, sets a TTL, and release frees the lock', async (t) => {
  const app = await buildApp(t)
  const key = lockKey(app, 'a')
  const a = await acquireLock(app.redis, key, { ttl: 5000 })
  t.ok(a, 'acquired')
  const held = a as LockHandle
  t.equal(held.key, key)
  t.match(held.token, /^[A-Za-z0-9_-]{22}$/, '128 random bits')
  t.equal(await app.redis.get(key), held.token, 'the key holds our token')
  const ttl = await app.redis.pttl(key)
  t.ok(ttl > 4000 && ttl <= 5000, `PTTL ${ttl}`)
  t.equal(await acquireLock(app.redis, key, { ttl: 5000 }), null, 'a second acquirer gets null (wait 0 tries once)')
  t.equal(await held.release(), true)
  t.equal(await app.redis.exists(key), 0)
  t.equal(await held.release(), false, 'a second release is a no-op')
  const b = await acquireLock(app.redis, key, { ttl: 5000 })
  t.ok(b, 'free again after release')
  t.not(b?.token, held.token, 'every acquisition has its own token')
  await b?.release()
  await assertKeysHaveTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('a holder whose lock expired cannot release or extend the next holder\'s lock', async (t) => {
  const prefix = freshPrefix()
  const app1 = await buildApp(t, { prefix })
  const app2 = await buildApp(t, { prefix })
  const key = lockKey(app1, 'expiring')
  const first = await acquireLock(app1.redis, key, { ttl: 50 }) as LockHandle
  t.ok(first)
  await waitUntil('the first lock expired', async () => (await app1.redis.exists(key)) === 0)
  const second = await acquireLock(app2.redis, key, { ttl: 5000 }) as LockHandle
  t.ok(second, 'another instance takes the expired lock')

  t.equal(await first.extend(60_000), false, 'the old holder cannot extend')
  t.equal(await first.release(), false, 'the old holder cannot release')
  t.equal(await app1.redis.get(key), second.token, 'the new holder still has it')
  const ttl = await app1.redis.pttl(key)
  t.ok(ttl > 0 && ttl <= 5000, `its TTL is untouched by the old holder (${ttl})`)

  t.equal(await second.extend(30_000), true, 'the holder extends')
  t.ok(await app1.redis.pttl(key) > 20_000, 'to the new TTL')
  t.equal(await second.extend(), true, 'extend() without a TTL uses the lock\'s ttl')
  const back = await app1.redis.pttl(key)
  t.ok(back > 4000 && back <= 5000, `back to the lock ttl (${back})`)
  t.equal(await second.release(), true)
  t.equal(await second.extend(), false, 'a released lock cannot be extended (no key is created)')
  t.equal(await app1.redis.exists(key), 0)
})

t.test('wait: retries until the holder releases or its TTL ends, then gives up', async (t) => {
  const app = await buildApp(t)
  const key = lockKey(app, 'wait')
  const holder = await acquireLock(app.redis, key, { ttl: 10_000 }) as LockHandle

  let started = Date.now()
  t.equal(await acquireLock(app.redis, key, { ttl: 1000, wait: 200, retryDelay: 20 }), null, 'not acquired within wait')
  let elapsed = Date.now() - started
  t.ok(elapsed >= 195 && elapsed < 1000, `gave up after ${elapsed}ms`)

  started = Date.now()
  setTimeout(() => { holder.release().catch(() => {}) }, 100)
  const next = await acquireLock(app.redis, key, { ttl: 300, wait: 5000, retryDelay: 10 }) as LockHandle
  elapsed = Date.now() - started
  t.ok(next, 'acquired once the holder released')
  t.ok(elapsed >= 95 && elapsed < 2000, `after ${elapsed}ms`)

  // `next` is never released: its TTL (300 ms) ends it and a waiter gets in.
  started = Date.now()
  const after = await acquireLock(app.redis, key, { ttl: 1000, wait: 5000, retryDelay: 10 })
  elapsed = Date.now() - started
  t.ok(after, 'acquired once the dead holder\'s TTL ended')
  t.ok(elapsed >= 150 && elapsed < 3000, `after ${elapsed}ms`)
  await after?.release()

  const blocker = await acquireLock(app.redis, key, { ttl: 5000 }) as LockHandle
  let ran = false
  await t.rejects(withLock(app.redis, key, { ttl: 1000, wait: 100 }, async () => { ran = true }),
    { code: 'FRS_LOCK_TIMEOUT', statusCode: 503, message: /not acquired within 100ms/ }, 'withLock throws FRS_LOCK_TIMEOUT')
  t.equal(ran, false, 'fn did not run')
  t.equal(await app.redis.get(key), blocker.token, 'the holder keeps its lock')
  await blocker.release()
})

t.test('withLock returns fn\'s value and releases, also when fn throws', async (t) => {
  const app = await buildApp(t)
  const key = lockKey(app, 'with')
  let seen: LockHandle | undefined
  const value = await withLock(app.redis, key, { ttl: 5000 }, async (lock) => {
    seen = lock
    t.equal(await app.redis.get(key), lock.token, 'held while fn runs')
    return 42
  })
  t.equal(value, 42)
  t.ok(seen)
  t.equal(await app.redis.exists(key), 0, 'released after success')

  const boom = new Error('boom')
  await t.rejects(withLock(app.redis, key, { ttl: 5000 }, async () => { throw boom }), boom, 'fn\'s own error')
  t.equal(await app.redis.exists(key), 0, 'released after a throw')
  t.ok(await acquireLock(app.redis, key, { ttl: 1000 }), 'acquirable at once')
})

t.test('50 concurrent acquirers on two instances: exactly one holds the lock at a time', async (t) => {
  const prefix = freshPrefix()
  const apps = [await buildApp(t, { prefix }), await buildApp(t, { prefix })]
  const key = lockKey(apps[0] as FastifyInstance, 'mutex')
  const shared = (apps[0] as FastifyInstance).redisSuite.keyspace('cache', 'locks').key('shared')
  let inside = 0
  let most = 0
  let runs = 0
  await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const app = apps[i % 2] as FastifyInstance
    await withLock(app.redis, key, { ttl: 5000, wait: 20_000, retryDelay: 5 }, async () => {
      inside++
      most = Math.max(most, inside)
      // A read-modify-write with a pause in between: any overlap between holders on
      // the two clients loses an update.
      const current = Number(await app.redis.get(shared) ?? 0)
      await sleep(Math.random() * 4)
      await app.redis.set(shared, String(current + 1), 'PX', 60_000)
      runs++
      inside--
    })
  }))
  t.equal(runs, 50, 'every acquirer ran')
  t.equal(most, 1, 'never two holders at once')
  t.equal(await apps[0]?.redis.get(shared), '50', 'no lost update in Redis')
  t.equal(await apps[0]?.redis.exists(key), 0, 'released at the end')
  await assertKeysHaveTtl(t, (apps[0] as FastifyInstance).redis, prefix)
})

t.test('bad options are refused, naming the option', async (t) => {
  const app = await buildApp(t)
  const key = lockKey(app, 'bad')
  await t.rejects(acquireLock(app.redis, '', { ttl: 100 }), { code: 'FRS_INVALID_OPTION', message: /"key"/ })
  await t.rejects(acquireLock(app.redis, key, { ttl: 0 }), { code: 'FRS_INVALID_OPTION', message: /"ttl"/ })
  await t.rejects(acquireLock(app.redis, key, { ttl: 1.5 }), { code: 'FRS_INVALID_OPTION', message: /"ttl"/ })
  await t.rejects(acquireLock(app.redis, key, { ttl: 100, wait: -1 }), { code: 'FRS_INVALID_OPTION', message: /"wait"/ })
  await t.rejects(acquireLock(app.redis, key, { ttl: 100, retryDelay: 0 }), { code: 'FRS_INVALID_OPTION', message: /"retryDelay"/ })
  const lock = await acquireLock(app.redis, key, { ttl: 1000 }) as LockHandle
  await t.rejects(lock.extend(-5), { code: 'FRS_INVALID_OPTION', message: /"ttlMs"/ })
  await lock.release()
  t.equal(await app.redis.exists(key), 0, 'nothing left behind')
})
