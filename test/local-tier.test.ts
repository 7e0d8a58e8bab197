// The local tier itself (lib/core/local-tier.ts), on a real subscription: copies that depend on
// other keys (a namespace's or a tag's generation) drop when those change; a read in flight
// when one of its dependencies changed is not kept; `*` drops everything; the bound holds and
// leaves no dependency behind; messages of the tier's own origin are skipped.
import t from 'tap'
import type { Test } from 'tap'
import { DROP_ALL, LocalTier } from '../lib/core/index.js'
import { freshPrefix, rawClient, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const raw = rawClient(redis)
t.teardown(() => raw.quit())

async function until (done: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!done()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

async function liveTier (t: Test, max = 100): Promise<{ tier: LocalTier<string>, publish: (message: string) => Promise<void> }> {
  const channel = `${freshPrefix()}:changed`
  const tier = new LocalTier<string>(raw, channel, { ttl: 60_000, max })
  t.teardown(() => tier.close())
  tier.start()
  t.ok(await until(() => tier.live), 'subscribed')
  const publish = async (message: string): Promise<void> => {
    const before = tier.stats.invalidations
    await raw.publish(channel, message)
    await until(() => tier.stats.invalidations > before)
  }
  return { tier, publish }
}

const now = () => Date.now()

t.test('a change of a dependency drops the copies that name it, and only those', async (t) => {
  const { tier, publish } = await liveTier(t)
  tier.end('a', tier.begin(), 'A', 60_000, now(), ['gen:ns', 'gen:tag1'])
  tier.end('b', tier.begin(), 'B', 60_000, now(), ['gen:ns'])
  tier.end('c', tier.begin(), 'C', 60_000, now(), ['gen:other'])
  await publish('someone gen:tag1')
  t.equal(tier.get('a', now()), undefined, 'a named tag1')
  t.equal(tier.get('b', now()), 'B')
  await publish('someone gen:ns')
  t.equal(tier.get('b', now()), undefined, 'b named the namespace')
  t.equal(tier.get('c', now()), 'C', 'c named neither')
  await publish(`someone ${DROP_ALL}`)
  t.equal(tier.get('c', now()), undefined, '* drops everything')
  t.equal(tier.size, 0)
})

t.test('a read in flight when one of its dependencies changed is not kept', async (t) => {
  const { tier, publish } = await liveTier(t)
  const raced = tier.begin()
  const other = tier.begin()
  await publish('someone gen:tag1')
  tier.end('a', raced, 'old', 60_000, now(), ['gen:ns', 'gen:tag1'])
  t.equal(tier.get('a', now()), undefined, 'the read that raced a change of its tag was not kept')
  tier.end('b', other, 'B', 60_000, now(), ['gen:ns'])
  t.equal(tier.get('b', now()), 'B', 'a read in flight at the same time, with other dependencies, was')
  tier.end('a', tier.begin(), 'new', 60_000, now(), ['gen:ns', 'gen:tag1'])
  t.equal(tier.get('a', now()), 'new', 'a read begun after the change is kept')
  const alone = tier.begin()
  await publish('someone d')
  tier.end('d', alone, 'old', 60_000, now())
  t.equal(tier.get('d', now()), undefined, 'the only read in flight, raced by a change of its key, is not kept either')
  const flight = tier.begin()
  await publish(`someone ${DROP_ALL}`)
  tier.end('c', flight, 'C', 60_000, now())
  t.equal(tier.get('c', now()), undefined, 'no read in flight across a drop of everything is kept')
})

t.test('the bound holds and evicted copies leave no dependency behind; own messages are skipped', async (t) => {
  const { tier, publish } = await liveTier(t, 3)
  for (let i = 0; i < 10; i++) tier.end(`k${i}`, tier.begin(), `v${i}`, 60_000, now(), [`dep${i}`])
  t.equal(tier.size, 3)
  t.same(['k7', 'k8', 'k9'].map((k) => tier.get(k, now())), ['v7', 'v8', 'v9'], 'the newest are kept')
  await publish('someone dep0')
  t.equal(tier.size, 3, 'a dependency of an evicted copy drops nothing')
  await publish(`${tier.origin} k9`)
  t.equal(tier.get('k9', now()), 'v9', 'a message of its own origin is skipped')
  tier.drop('dep8')
  t.equal(tier.get('k8', now()), undefined, 'drop() of a dependency drops its copies')
  tier.end('k7', tier.begin(), 'w7', 60_000, now(), ['depX'])
  await publish('someone dep7')
  t.equal(tier.get('k7', now()), 'w7', 'a replaced copy no longer depends on what the old one named')
})
