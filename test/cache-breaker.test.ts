// The circuit breaker alone: no Redis needed for its arithmetic.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { CircuitBreaker } from '../lib/core/circuit-breaker.js'

function breaker (warnings: string[] = [], timeout = 1000) {
  return new CircuitBreaker({ threshold: 3, openFor: 100, timeout, warnInterval: 10_000, log: { warn: (_obj, msg) => { warnings.push(msg) } } })
}

t.test('opens after N consecutive failures, skips the call while open, then lets one probe through', async (t) => {
  const warnings: string[] = []
  const b = breaker(warnings)
  let calls = 0
  const failing = async () => { calls++; throw new Error('ECONNREFUSED') }
  for (let i = 0; i < 3; i++) await t.rejects(b.run('get', failing), { code: 'FRS_CACHE_UNAVAILABLE' })
  t.equal(b.open, true)
  t.equal(calls, 3)
  await t.rejects(b.run('get', failing), { code: 'FRS_CACHE_UNAVAILABLE', message: /circuit is open/ })
  t.equal(calls, 3, 'Redis is not called while open')
  t.equal(warnings.length, 1, 'one warning per interval')
  await sleep(120)
  t.equal(b.open, false)
  let release = (): void => {}
  const probe = b.run('get', () => new Promise<string>((resolve) => { release = () => resolve('ok') }))
  await t.rejects(b.run('get', async () => 'x'), { message: /circuit is open/ }, 'only one probe at a time')
  release()
  t.equal(await probe, 'ok')
  t.equal(b.open, false, 'a successful probe closes the circuit')
  t.equal(b.failures, 0)
})

t.test('a failed probe opens the circuit again', async (t) => {
  const b = breaker()
  for (let i = 0; i < 3; i++) await b.run('get', async () => { throw new Error('down') }).catch(() => {})
  await sleep(120)
  await t.rejects(b.run('get', async () => { throw new Error('still down') }))
  t.equal(b.open, true)
})

t.test('an error reply does not count toward opening', async (t) => {
  const b = breaker()
  const reply = Object.assign(new Error('WRONGTYPE'), { name: 'ReplyError' })
  for (let i = 0; i < 5; i++) await t.rejects(b.run('incr', async () => { throw reply }))
  t.equal(b.open, false)
})

t.test('a call is bounded by the timeout', async (t) => {
  const b = breaker([], 50)
  const started = Date.now()
  await t.rejects(b.run('get', () => sleep(1000)), { code: 'FRS_CACHE_UNAVAILABLE', message: /no reply within 50ms/ })
  t.ok(Date.now() - started < 200)
})
