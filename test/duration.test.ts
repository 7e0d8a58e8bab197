import t from 'tap'
import { parseDuration, parsePositiveDuration, parseRate } from '../lib/core/duration.js'

t.test('durations', async (t) => {
  const good: Array<[unknown, number]> = [
    [0, 0], [1500, 1500], ['500ms', 500], ['10s', 10_000], ['10m', 600_000], ['1h', 3_600_000],
    ['1d', 86_400_000], ['2w', 1_209_600_000], ['1.5s', 1500], [' 5m ', 300_000]
  ]
  for (const [input, ms] of good) t.equal(parseDuration(input, 'ttl'), ms, JSON.stringify(input))
  const bad: unknown[] = ['', '10', '10 minutes', '-1s', '1y', 'ms', 's10', '1e3ms', -1, 1.5, Infinity, NaN, null, undefined, {}, [], true, '99999999999999999999d']
  for (const input of bad) {
    t.throws(() => parseDuration(input, 'ttl'), { code: 'FRS_INVALID_DURATION', message: /"ttl"/ }, `refuses ${String(input)}`)
  }
  t.throws(() => parsePositiveDuration(0, 'wait'), { code: 'FRS_INVALID_DURATION', message: /greater than zero/ })
  t.equal(parsePositiveDuration('1s', 'wait'), 1000)
})

t.test('rates', async (t) => {
  const good: Array<[string, number, number]> = [
    ['100/hour', 100, 3_600_000], ['5/15m', 5, 900_000], ['10/s', 10, 1000], ['1000/day', 1000, 86_400_000],
    ['3/minute', 3, 60_000], ['3/minutes', 3, 60_000], ['7/2h', 7, 7_200_000], ['1/sec', 1, 1000],
    ['20/500ms', 20, 500], ['5 / min', 5, 60_000], ['2/W', 2, 604_800_000], ['4/1.5s', 4, 1500]
  ]
  for (const [input, limit, windowMs] of good) t.same(parseRate(input, 'rate'), { limit, windowMs }, input)
  const bad: unknown[] = ['', '100', '/hour', '0/hour', '-1/s', '1.5/s', '10/fortnight', '10/ss', '10/0s', 'ten/s', '10/s/2', 10, null, {}]
  for (const input of bad) {
    t.throws(() => parseRate(input, 'rate'), { code: 'FRS_INVALID_RATE', message: /"rate"/ }, `refuses ${String(input)}`)
  }
})
