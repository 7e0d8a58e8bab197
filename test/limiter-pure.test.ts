// The pure parts of the limiter, without Redis: IP normalization, policy validation, headers.
import t from 'tap'
import type { Test } from 'tap'
import { parseList } from 'structured-headers'
import { normalizeIp } from '../lib/rate-limit/ip.js'
import { resolvePolicies } from '../lib/rate-limit/limiter.js'
import type { LimitResult } from '../lib/rate-limit/limiter.js'
import { rateLimitHeaders } from '../lib/rate-limit/headers.js'

t.test('normalizeIp: IPv4 as is, IPv4-mapped to IPv4, IPv6 by /64', async (t) => {
  t.equal(normalizeIp('1.2.3.4'), '1.2.3.4')
  t.equal(normalizeIp('::ffff:1.2.3.4'), '1.2.3.4')
  t.equal(normalizeIp('::FFFF:1.2.3.4'), '1.2.3.4')
  t.equal(normalizeIp('::ffff:102:304'), '1.2.3.4', 'the hex spelling of a mapped address')
  t.equal(normalizeIp('0:0:0:0:0:ffff:1.2.3.4'), '1.2.3.4')
  t.equal(normalizeIp('2001:db8:1:2::1'), '2001:db8:1:2::/64')
  t.equal(normalizeIp('2001:0DB8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'same /64, other spelling')
  t.equal(normalizeIp('2001:db8:1:3::1'), '2001:db8:1:3::/64')
  t.equal(normalizeIp('::1'), '0:0:0:0::/64')
  t.equal(normalizeIp('fe80::1%eth0'), 'fe80:0:0:0::/64', 'zone dropped')
  t.equal(normalizeIp('2001:db8::ffff:1.2.3.4'), '2001:db8:0:0::/64', 'an IPv4 tail elsewhere is not a mapped address')
  t.equal(normalizeIp('not an ip'), undefined)
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1.2.3.4 ', '01.2.3.4', '']) t.equal(normalizeIp(bad), undefined, `${JSON.stringify(bad)} is not an address`)
  t.equal(normalizeIp('0.0.0.0'), '0.0.0.0')
  t.equal(normalizeIp('255.255.255.255'), '255.255.255.255')
  t.equal(normalizeIp(undefined), undefined)
})

t.test('resolvePolicies validates and names the option', async (t) => {
  const d = { name: 'anon', algorithm: 'gcra' as const }
  t.same(resolvePolicies('5/15m', d, 'rate'), [{ name: 'anon', limit: 5, windowMs: 900_000, algorithm: 'gcra', burst: 5 }])
  t.same(resolvePolicies([{ name: 'min', rate: '10/minute', algorithm: 'fixed-window' }, { name: 'day', rate: '1000/day', burst: 20 }], d, 'rate').map((p) => [p.name, p.limit, p.windowMs, p.algorithm, p.burst]),
    [['min', 10, 60_000, 'fixed-window', 10], ['day', 1000, 86_400_000, 'gcra', 20]])
  t.throws(() => resolvePolicies('5 per hour', d, 'userRate'), { code: 'FRS_INVALID_RATE', message: /userRate/ })
  t.throws(() => resolvePolicies([], d, 'rate'), { code: 'FRS_INVALID_OPTION', message: /"rate"/ })
  t.throws(() => resolvePolicies([{ name: 'a b', rate: '1/s' }], d, 'rate'), { message: /"rate\[0\]\.name"/ })
  t.throws(() => resolvePolicies([{ name: 'a', rate: '1/s' }, { name: 'a', rate: '2/s' }], d, 'rate'), { message: /used twice/ })
  t.throws(() => resolvePolicies([{ name: 'a', rate: '1/s', algorithm: 'leaky' as never }], d, 'rate'), { message: /"rate\[0\]\.algorithm"/ })
  t.throws(() => resolvePolicies([{ name: 'a', rate: '1/s', burst: 0 }], d, 'rate'), { message: /"rate\[0\]\.burst"/ })
  t.throws(() => resolvePolicies([{ name: 'a', rate: '1/s', burst: 3, algorithm: 'fixed-window' }], d, 'rate'), { message: /only applies to the "gcra"/ })
})

const [minute, day] = resolvePolicies([{ name: 'minute', rate: '10/minute' }, { name: 'day', rate: '1000/day' }], { name: 'x', algorithm: 'gcra' }, 'rate') as [ReturnType<typeof resolvePolicies>[0], ReturnType<typeof resolvePolicies>[0]]

/** A structured-field list as [name, params], asserting that each name is an sf-string. */
function members (t: Test, value: string | undefined): Array<[string, Record<string, unknown>]> {
  t.type(value, 'string')
  return parseList(value as string).map(([item, params]) => {
    t.type(item, 'string', 'the policy identifier is an sf-string')
    return [item as string, Object.fromEntries(params)]
  })
}

t.test('draft headers parse as structured fields, one member per policy', async (t) => {
  const result: LimitResult = { allowed: true, retryAfterMs: 0, banned: false, policies: [{ policy: minute, remaining: 9, resetMs: 6000 }, { policy: day, remaining: 999, resetMs: 86_400 }] }
  const h = rateLimitHeaders(result, 'draft')
  t.same(members(t, h['ratelimit-policy']), [['minute', { q: 10, w: 60 }], ['day', { q: 1000, w: 86400 }]])
  t.same(members(t, h.ratelimit), [['minute', { r: 9, t: 6 }], ['day', { r: 999, t: 87 }]], 't is rounded up, never early')
  t.equal(h['retry-after'], undefined)
  t.equal(h['x-ratelimit-limit'], undefined)
})

t.test('a refusal: Retry-After not earlier than any refused policy\'s t; legacy headers show the tightest policy', async (t) => {
  const result: LimitResult = { allowed: false, retryAfterMs: 4_500, banned: false, policies: [{ policy: minute, remaining: 0, resetMs: 4_500 }, { policy: day, remaining: 990, resetMs: 1000 }] }
  const h = rateLimitHeaders(result, 'both')
  const limits = members(t, h.ratelimit)
  t.equal(h['retry-after'], '5')
  t.ok(Number(h['retry-after']) >= Number(limits[0]?.[1].t), 'Retry-After >= t')
  t.same([h['x-ratelimit-limit'], h['x-ratelimit-remaining'], h['x-ratelimit-reset']], ['10', '0', '5'])
  const legacy = rateLimitHeaders(result, 'legacy')
  t.equal(legacy.ratelimit, undefined)
  t.equal(legacy['retry-after'], '5')
  t.same(rateLimitHeaders(result, false), { 'retry-after': '5' }, 'Retry-After even with headers off')
})

t.test('normalizeIp with another IPv6 subnet', async (t) => {
  t.equal(normalizeIp('2001:db8:1:2::1', 48), '2001:db8:1::/48')
  t.equal(normalizeIp('2001:db8:1:ffff::1', 48), '2001:db8:1::/48')
  t.equal(normalizeIp('2001:db8:1:2::1', 56), '2001:db8:1:0::/56', 'a partial group is masked')
  t.equal(normalizeIp('2001:db8:1:2ff::1', 56), '2001:db8:1:200::/56')
  t.equal(normalizeIp('2001:db8:1:2:3:4:5:6', 128), '2001:db8:1:2:3:4:5:6/128', 'a whole address')
  t.equal(normalizeIp('1.2.3.4', 48), '1.2.3.4', 'IPv4 is not affected')
  t.equal(normalizeIp('::ffff:1.2.3.4', 16), '1.2.3.4')
})

t.test('LocalLimiter (onRedisError: local) answers as the script: GCRA, windows, refunds, bounded', async (t) => {
  const { LocalLimiter } = await import('../lib/rate-limit/local.js')
  const T0 = 1_699_999_200_000
  const local = new LocalLimiter(2)
  const gcra = resolvePolicies('10/minute', { name: 'p', algorithm: 'gcra', burst: 3 }, 'rate')
  const burst = [0, 1, 2, 3].map(() => local.consume('a', gcra, 1, T0))
  t.same(burst.map((r) => r.allowed), [true, true, true, false])
  t.same(burst.map((r) => r.policies[0]?.remaining), [2, 1, 0, 0])
  t.equal(burst[3]?.retryAfterMs, 6000, 'one emission interval')
  t.equal(local.consume('a', gcra, 1, T0 + 6000).allowed, true)
  local.refund('a', gcra, 1, T0 + 6000, T0 + 6000)
  t.equal(local.consume('a', gcra, 1, T0 + 6000).allowed, true, 'a refund gives the unit back')
  t.equal(local.consume('a', gcra, 1, T0 + 6000).allowed, false)
  const fixed = resolvePolicies('2/minute', { name: 'f', algorithm: 'fixed-window' }, 'rate')
  t.same([1, 2, 3].map(() => local.consume('f', fixed, 1, T0 + 30_000).allowed), [true, true, false])
  t.equal(local.consume('f', fixed, 1, T0 + 30_000).retryAfterMs, 30_000, 'until the window ends')
  t.equal(local.consume('f', fixed, 1, T0 + 60_000).allowed, true, 'a new window')
  const sliding = resolvePolicies('2/minute', { name: 's', algorithm: 'sliding-window' }, 'rate')
  local.consume('s', sliding, 2, T0)
  t.equal(local.consume('s', sliding, 1, T0 + 60_000).allowed, false, 'the previous window still weighs in full at its end')
  t.equal(local.consume('s', sliding, 1, T0 + 90_000).allowed, true, 'half of it at the middle of the next')
  t.equal(local.size, 2, 'at most max keys: the least recently used went first')
  t.equal(local.consume('a', gcra, 1, T0 + 6000).policies[0]?.remaining, 2, '"a" was dropped and starts again')
})
