// lib/limiter.ts against real Redis, with the test-only clock so that window edges and GCRA
// bursts are tested at exact instants.
import t from 'tap'
import type { Test } from 'tap'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import { Limiter, resolvePolicies } from '../lib/rate-limit/limiter.js'
import type { Algorithm, LimitResult, NamedRate, Policy } from '../lib/rate-limit/limiter.js'
import type { Rate } from '../lib/core/duration.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, needsRedis, scriptCalls } from './fixtures/redis.js'

// The fixture's assertKeysHaveTtl types its `t` narrower than tap's Test; adapt it here.
const assertTtl = (t: Test, client: Redis | Cluster, prefix: string) =>
  assertKeysHaveTtl({ ok: (v, m) => t.ok(v, m ?? ''), same: (a, b, m) => t.same(a, b, m ?? '') }, client, prefix)

// A window start (a whole hour) far from the real clock: nothing may depend on Redis expiring
// keys. Rates are per minute or longer, so that TTLs (in real time) outlast a slow test run.
const T0 = 1_699_999_200_000

async function setup (t: Test, ban?: { after: number, durationMs: number }) {
  const app = await buildApp(t)
  const clock = { now: T0 }
  const limiter = new Limiter({ client: app.redis, clock: () => clock.now, ban })
  const ks = app.redisSuite.keyspace('rl', 'lib')
  return { app, clock, limiter, key: (id: string) => ks.taggedKey(['k', id]) }
}

const one = (rate: Rate, algorithm: Algorithm = 'gcra', burst?: number) => resolvePolicies(rate, { name: 'p', algorithm, burst }, 'rate')
const allowedOf = (results: LimitResult[]) => results.filter((r) => r.allowed).length

t.test('GCRA: a burst of `burst`, then exactly one request per emission interval', async (t) => {
  const { app, clock, limiter, key } = await setup(t)
  const policies = one('10/minute', 'gcra', 3) // emission interval 6 s, 3 at once
  const k = key('gcra')
  const burst = []
  for (let i = 0; i < 5; i++) burst.push(await limiter.consume(k, policies))
  t.same(burst.map((r) => r.allowed), [true, true, true, false, false], 'three at once, not four')
  t.same(burst.map((r) => r.policies[0]?.remaining), [2, 1, 0, 0, 0])
  t.equal(burst[3]?.retryAfterMs, 6000, 'the next one is due one interval later')
  t.equal(burst[2]?.policies[0]?.resetMs, 18_000, 'full quota back after three intervals')
  clock.now = T0 + 5999
  t.equal((await limiter.consume(k, policies)).allowed, false, '1 ms early is refused')
  clock.now = T0 + 6000
  t.equal((await limiter.consume(k, policies)).allowed, true, 'on time is allowed')
  t.equal((await limiter.consume(k, policies)).allowed, false, 'and only one')
  clock.now = T0 + 6000 + 18_000
  const after = []
  for (let i = 0; i < 4; i++) after.push(await limiter.consume(k, policies))
  t.equal(allowedOf(after), 3, 'after an idle spell the burst is back, and no more')
  await assertTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('GCRA default burst is the count: 100/hour allows 100 at once, then one per 36 s', async (t) => {
  const { clock, limiter, key } = await setup(t)
  const policies = one('100/hour')
  const results = await Promise.all(Array.from({ length: 150 }, () => limiter.consume(key('x'), policies)))
  t.equal(allowedOf(results), 100)
  clock.now = T0 + 35_999
  t.equal((await limiter.consume(key('x'), policies)).allowed, false)
  clock.now = T0 + 36_000
  t.equal((await limiter.consume(key('x'), policies)).allowed, true)
})

t.test('GCRA: limiters with and without bans share the state; fractional intervals stay exact', async (t) => {
  const { app, clock, limiter, key } = await setup(t)
  const banning = new Limiter({ client: app.redis, clock: () => clock.now, ban: { after: 100, durationMs: 60_000 } })
  const policies = one('7/minute') // an emission interval of 8571.428… ms
  const k = key('shared')
  for (let i = 0; i < 3; i++) t.equal((await limiter.consume(k, policies)).allowed, true, 'no bans')
  t.equal((await banning.consume(k, policies)).policies[0]?.remaining, 3, 'the limiter with bans goes on from 4 used')
  t.equal((await limiter.peek(k, policies)).policies[0]?.remaining, 3, 'peek agrees')
  for (let i = 0; i < 3; i++) await limiter.consume(k, policies)
  t.equal((await limiter.consume(k, policies)).allowed, false, 'the 8th at once is refused')
  for (let n = 1; n <= 20; n++) {
    clock.now = T0 + Math.ceil(n * 60_000 / 7)
    const r = await (n % 2 === 0 ? limiter : banning).consume(k, policies)
    if (!r.allowed) { t.fail(`request ${n} on time was refused`); break }
    clock.now = T0 + Math.ceil(n * 60_000 / 7) // a second one at the same instant is one too many
    if ((await limiter.consume(k, policies)).allowed) { t.fail(`two requests allowed at interval ${n}`); break }
  }
  t.pass('20 intervals of 60000/7 ms: one request each, no drift')
})

t.test('GCRA: the script\'s fast path (one policy, no bans) answers as its general path', async (t) => {
  const { app, clock, limiter, key } = await setup(t)
  // bans that never trigger send the same checks through the general path
  const general = new Limiter({ client: app.redis, clock: () => clock.now, ban: { after: 1_000_000, durationMs: 60_000 } })
  const policies = one('7/minute', 'gcra', 3)
  const fastResults: LimitResult[] = []
  const generalResults: LimitResult[] = []
  for (let i = 0; i < 40; i++) {
    clock.now = T0 + i * 2_900 // about one request per 2.9 s against one per 8.57 s: allowed and refused ones
    const cost = 1 + (i % 3 === 0 ? 1 : 0)
    fastResults.push(await limiter.consume(key('fast'), policies, cost))
    generalResults.push(await general.consume(key('general'), policies, cost))
  }
  t.same(fastResults, generalResults)
  t.ok(allowedOf(fastResults) > 5 && allowedOf(fastResults) < 35, `both allowed and refused checks (${allowedOf(fastResults)} of 40)`)
  t.equal(await app.redis.hget(key('fast'), 'g:p'), await app.redis.hget(key('general'), 'g:p'), 'the same stored TAT')
})

t.test('GCRA: checks of one key in one batch (the fast path with a copy) answer as one at a time (the shortest path)', async (t) => {
  const { app, clock, limiter, key } = await setup(t)
  const policies = one('7/minute', 'gcra', 3)
  const batched: LimitResult[] = []
  const single: LimitResult[] = []
  const others: LimitResult[] = []
  const lone: LimitResult[] = []
  for (let i = 0; i < 20; i++) {
    clock.now = T0 + i * 5_000
    // three checks of one key and one of another in one script call
    const [a, b, c, other] = await Promise.all([
      limiter.consume(key('batched'), policies), limiter.consume(key('batched'), policies, 2),
      limiter.consume(key('batched'), policies), limiter.consume(key('other'), policies)
    ])
    batched.push(a, b, c)
    others.push(other)
    for (const cost of [1, 2, 1]) single.push(await limiter.consume(key('single'), policies, cost))
    lone.push(await limiter.consume(key('lone'), policies))
  }
  t.same(batched, single)
  t.same(others, lone, 'the batch\'s other key is counted as on its own')
  t.ok(allowedOf(batched) > 5 && allowedOf(batched) < 55, `both allowed and refused checks (${allowedOf(batched)} of 60)`)
  t.ok(allowedOf(others) > 5 && allowedOf(others) < 19, `both allowed and refused checks of the other key (${allowedOf(others)} of 20)`)
  for (const [a, b] of [['batched', 'single'], ['other', 'lone']] as const) {
    t.equal(await app.redis.hget(key(a), 'g:p'), await app.redis.hget(key(b), 'g:p'), `the same stored TAT (${a})`)
    // the same TTL, read a moment apart on the Redis clock
    const [ta, tb] = [await app.redis.pttl(key(a)), await app.redis.pttl(key(b))]
    t.ok(ta > 0 && Math.abs(ta - tb) < 200, `the same TTL (${a}: ${ta} and ${tb} ms)`)
  }
})

t.test('fixed window: the count resets exactly at the window edge', async (t) => {
  const { app, clock, limiter, key } = await setup(t)
  const policies = one('5/minute', 'fixed-window')
  clock.now = T0 + 30_000
  const first = []
  for (let i = 0; i < 5; i++) first.push(await limiter.consume(key('f'), policies))
  t.equal(allowedOf(first), 5)
  t.equal(first[4]?.policies[0]?.resetMs, 30_000)
  clock.now = T0 + 59_999 // 1 ms before the edge
  const late = await limiter.consume(key('f'), policies)
  t.equal(late.allowed, false)
  t.equal(late.retryAfterMs, 1, 'retry at the edge')
  clock.now = T0 + 60_000
  const second = []
  for (let i = 0; i < 6; i++) second.push(await limiter.consume(key('f'), policies))
  t.equal(allowedOf(second), 5, 'a new window at the edge')
  t.equal(second[0]?.policies[0]?.remaining, 4)
  t.equal(second[5]?.retryAfterMs, 60_000)
  const pttl = await app.redis.pttl(key('f'))
  t.ok(pttl > 59_000 && pttl <= 60_000, `expires with the window (${pttl} ms)`)
})

t.test('sliding window: the previous window fades out linearly', async (t) => {
  const { clock, limiter, key } = await setup(t)
  const policies = one('10/minute', 'sliding-window')
  const k = key('s')
  const first = []
  for (let i = 0; i < 11; i++) first.push(await limiter.consume(k, policies))
  t.equal(allowedOf(first), 10)
  clock.now = T0 + 60_000 // the next window: the previous 10 still weigh fully
  const edge = await limiter.consume(k, policies)
  t.equal(edge.allowed, false, 'no reset at the edge, unlike a fixed window')
  t.equal(edge.retryAfterMs, 6000, 'one slot frees when a tenth of the old window has faded')
  clock.now = T0 + 65_999
  t.equal((await limiter.consume(k, policies)).allowed, false)
  clock.now = T0 + 66_000
  t.equal((await limiter.consume(k, policies)).allowed, true)
  clock.now = T0 + 90_000 // 10 * 0.5 + 1 = 6 used
  const half = []
  for (let i = 0; i < 5; i++) half.push(await limiter.consume(k, policies))
  t.equal(allowedOf(half), 4)
  clock.now = T0 + 180_000 // two windows later nothing is left
  t.equal((await limiter.peek(k, policies)).policies[0]?.remaining, 10)
})

t.test('several policies: counted together, and a refusal counts on none of them', async (t) => {
  const { clock, limiter, key } = await setup(t)
  const list: NamedRate[] = [{ name: 'minute', rate: '2/minute', algorithm: 'fixed-window' }, { name: 'hour', rate: '3/hour' }]
  const policies = resolvePolicies(list, { name: 'x', algorithm: 'gcra' }, 'rate')
  const k = key('multi')
  const a = [await limiter.consume(k, policies), await limiter.consume(k, policies), await limiter.consume(k, policies)]
  t.same(a.map((r) => r.allowed), [true, true, false], 'the per-minute policy refuses the third')
  t.same(a[2]?.policies.map((p) => p.remaining), [0, 1], 'the refused request did not use the hourly quota')
  clock.now = T0 + 60_000
  t.equal((await limiter.consume(k, policies)).allowed, true, 'the third fits in the hour')
  const refused = await limiter.consume(k, policies)
  t.equal(refused.allowed, false, 'now the hourly policy refuses')
  t.equal(refused.policies[1]?.remaining, 0)
  t.ok(refused.retryAfterMs > 60_000, `retry waits for the hourly policy (${refused.retryAfterMs} ms)`)
})

t.test('peek counts nothing; reset forgets', async (t) => {
  const { limiter, key } = await setup(t)
  const policies = one('2/minute')
  for (let i = 0; i < 5; i++) t.equal((await limiter.peek(key('p'), policies)).policies[0]?.remaining, 2)
  await limiter.consume(key('p'), policies)
  await limiter.consume(key('p'), policies)
  const peeked = await limiter.peek(key('p'), policies)
  t.equal(peeked.allowed, false)
  t.equal(peeked.policies[0]?.remaining, 0)
  await limiter.reset(key('p'))
  t.equal((await limiter.consume(key('p'), policies)).allowed, true)
})

t.test('bans: after `after` refusals within the duration, every request is refused for the duration', async (t) => {
  const { app, clock, limiter, key } = await setup(t, { after: 2, durationMs: 600_000 })
  const policies = one('1/minute', 'fixed-window')
  const k = key('ban')
  t.equal((await limiter.consume(k, policies)).allowed, true)
  t.equal((await limiter.consume(k, policies)).banned, false, 'first refusal: a strike')
  const second = await limiter.consume(k, policies)
  t.equal(second.banned, true, 'second refusal: banned')
  t.equal(second.retryAfterMs, 600_000)
  clock.now = T0 + 300_000 // the 1/minute quota is back, the ban is not
  const during = await limiter.consume(k, policies)
  t.equal(during.allowed, false)
  t.equal(during.banned, true)
  t.equal(during.retryAfterMs, 300_000)
  clock.now = T0 + 600_000
  t.equal((await limiter.consume(k, policies)).allowed, true, 'the ban ends')
  await assertTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('every state key has a TTL that covers what it remembers, no longer', async (t) => {
  const { app, limiter, key } = await setup(t)
  await limiter.consume(key('g'), one('10/minute')) // 6 s of TAT
  await limiter.consume(key('s'), one('10/minute', 'sliding-window'))
  const g = await app.redis.pttl(key('g'))
  t.ok(g > 5000 && g <= 6000, `GCRA key lives until its TAT (${g} ms)`)
  const s = await app.redis.pttl(key('s'))
  t.ok(s > 60_000 && s <= 120_000, `sliding key lives through the next window (${s} ms)`)
  await assertTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('recovers by itself after SCRIPT FLUSH (NOSCRIPT)', async (t) => {
  const { app, limiter, key } = await setup(t)
  const policies = one('5/minute')
  await limiter.consume(key('n'), policies)
  const nodes: Redis[] = app.redis instanceof Cluster ? app.redis.nodes('master') : [app.redis]
  await Promise.all(nodes.map((n) => n.script('FLUSH')))
  const r = await limiter.consume(key('n'), policies)
  t.equal(r.allowed, true)
  t.equal(r.policies[0]?.remaining, 3, 'the count survived, the script was reloaded')
})

t.test('parallel checks go in a few script calls, each counted as if it came alone', async (t) => {
  const { app, limiter, key } = await setup(t)
  const before = await scriptCalls(app.redis)
  const results = await Promise.all(Array.from({ length: 300 }, () => limiter.consume(key('hot'), one('100/hour'))))
  const calls = await scriptCalls(app.redis) - before
  t.equal(allowedOf(results), 100, 'exactly the limit allowed')
  t.same(results.slice(0, 100).map((r) => r.policies[0]?.remaining), Array.from({ length: 100 }, (_, i) => 99 - i), 'in arrival order, each sees what is left after it')
  t.ok(results.slice(100).every((r) => !r.allowed && r.retryAfterMs === 36_000), 'the rest are refused until the next emission')
  t.ok(calls >= 1 && calls <= 10, `300 checks in ${calls} script calls`)
})

t.test('a batch of mixed keys, policies and modes answers as the same checks one by one', async (t) => {
  const { limiter, key } = await setup(t)
  const lists = [one('3/minute'), one('2/minute', 'fixed-window'), resolvePolicies([{ name: 'a', rate: '4/minute' }, { name: 'b', rate: '2/minute', algorithm: 'sliding-window' }], { name: 'x', algorithm: 'gcra' }, 'rate')]
  const plan = Array.from({ length: 60 }, (_, i) => ({ k: `m${i % 3}`, list: lists[Math.floor(i / 3) % 3] as Policy[], peek: i % 5 === 4, cost: 1 + (i % 2) }))
  const run = (prefix: string, p: typeof plan[number]) => (p.peek ? limiter.peek(key(prefix + p.k), p.list, p.cost) : limiter.consume(key(prefix + p.k), p.list, p.cost))
  const together = await Promise.all(plan.map((p) => run('together-', p)))
  const alone: LimitResult[] = []
  for (const p of plan) alone.push(await run('alone-', p))
  t.same(together, alone)
  t.ok(allowedOf(alone) > 5 && allowedOf(alone) < 55, `the plan mixes allowed and refused checks (${allowedOf(alone)} of 60 allowed)`)
})

t.test('checks waiting behind a call that times out fail with it, not one timeout later', { skip: needsRedis('it pauses the server with CLIENT PAUSE') }, async (t) => {
  const app = await buildApp(t)
  const limiter = new Limiter({ client: app.redis, timeoutMs: 500 })
  const k = app.redisSuite.keyspace('rl', 'lib').taggedKey(['k', 'paused'])
  const policies = one('100/hour')
  await limiter.consume(k, policies)
  const nodes: Redis[] = app.redis instanceof Cluster ? app.redis.nodes('master') : [app.redis]
  const pausers = nodes.map((n) => n.duplicate())
  t.teardown(() => { for (const p of pausers) p.disconnect() })
  await Promise.all(pausers.map((p) => p.status === 'wait' ? p.connect() : undefined))
  await Promise.all(pausers.map((p) => p.call('CLIENT', 'PAUSE', '1500', 'ALL')))
  const started = Date.now()
  const first = limiter.consume(k, policies)
  await new Promise((resolve) => setImmediate(resolve)) // the first call is now in flight
  const waiting = Array.from({ length: 50 }, () => limiter.consume(k, policies))
  const settled = await Promise.allSettled([first, ...waiting])
  const elapsed = Date.now() - started
  t.ok(settled.every((s) => s.status === 'rejected'), 'all 51 rejected')
  t.ok(elapsed < 900, `after one timeout (${elapsed} ms), not two`)
  await new Promise((resolve) => setTimeout(resolve, started + 1600 - Date.now())) // the pause ends
  t.equal((await limiter.consume(k, policies)).allowed, true, 'works again once Redis answers')
})

t.test('uses Redis TIME without the test clock', async (t) => {
  const app = await buildApp(t)
  const limiter = new Limiter({ client: app.redis })
  const k = app.redisSuite.keyspace('rl').taggedKey(['k', 'real'])
  const results = await Promise.all(Array.from({ length: 20 }, () => limiter.consume(k, one('10/hour'))))
  t.equal(allowedOf(results), 10)
  const refused = results.find((r) => !r.allowed)
  t.ok(refused !== undefined && refused.retryAfterMs > 350_000 && refused.retryAfterMs <= 360_000, `retry about 6 min (${refused?.retryAfterMs})`)
})

t.test('refund: gives back a counted check, in the window it was counted in, atomically in the script', async (t) => {
  const { app, clock, limiter, key } = await setup(t)
  const gcra = one('10/minute', 'gcra', 2)
  const g = key('refund-g')
  const counted = await limiter.consume(g, gcra)
  t.equal(typeof counted.timeMs, 'number', 'the check says when it was counted')
  await limiter.consume(g, gcra)
  t.equal((await limiter.peek(g, gcra)).allowed, false, 'the burst of 2 is used')
  await limiter.refund(g, gcra, 1, counted.timeMs as number)
  t.equal((await limiter.peek(g, gcra)).policies[0]?.remaining, 1, 'GCRA: one unit back')
  await limiter.refund(g, gcra, 5, counted.timeMs as number)
  t.equal((await limiter.peek(g, gcra)).policies[0]?.remaining, 2, 'never more than the whole quota')

  const fixed = one('3/minute', 'fixed-window')
  const sliding = one('3/minute', 'sliding-window')
  clock.now = T0 + 50_000
  const f = await limiter.consume(key('refund-f'), fixed, 2)
  const s = await limiter.consume(key('refund-s'), sliding, 2)
  clock.now = T0 + 60_000 // the next window
  await limiter.refund(key('refund-f'), fixed, 2, f.timeMs as number)
  t.equal((await limiter.consume(key('refund-f'), fixed, 3)).allowed, true, 'fixed: a refund from a past window changes nothing in the new one')
  t.equal((await limiter.peek(key('refund-s'), sliding, 2)).allowed, false, 'sliding: the previous window\'s 2 still weigh')
  await limiter.refund(key('refund-s'), sliding, 2, s.timeMs as number)
  t.equal((await limiter.peek(key('refund-s'), sliding, 3)).allowed, true, 'sliding: refunded from the previous window\'s count')
  await assertTtl(t, app.redis, app.redisSuite.prefix)
})
