// Budgets shared across routes and app processes, over real HTTP: three app processes on one
// Redis, hundreds of concurrent requests spread over the routes of a scope (or of the
// plugin-wide budget) and over the processes; exactly the quota is allowed, no more. A route
// that counts only failures reserves at the check, so concurrent failures cannot overshoot,
// and its successes are given back.
import t from 'tap'
import type { TeardownHost } from './fixtures/app.js'
import { startAppProcess } from './fixtures/app-process.js'
import { freshPrefix, memoryMode, needsRedis } from './fixtures/redis.js'

async function startApp (t: TeardownHost, env: Record<string, string>): Promise<string> {
  return (await startAppProcess(t, 'rate-limit-app.ts', env)).ready.base
}

const prefix = freshPrefix()
// (none on the memory engine, where every test here is skipped)
const bases = memoryMode ? [] : await Promise.all([1, 2, 3].map(() => startApp(t, { PREFIX: prefix, SHARED_RATE: '120/hour', PLUGIN_RATE: '90/hour', LOGIN_RATE: '40/hour' })))

const count = (statuses: number[]) => {
  const out: Record<number, number> = {}
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1
  return out
}

async function spread (n: number, paths: string[], init: RequestInit = {}): Promise<Array<{ status: number, policy: string | null }>> {
  return await Promise.all(Array.from({ length: n }, async (_, i) => {
    const res = await fetch((bases[i % 3] as string) + (paths[Math.floor(i / 3) % paths.length] as string), init)
    await res.arrayBuffer()
    return { status: res.status, policy: res.headers.get('ratelimit-policy') }
  }))
}

t.test('a scope shared by three routes in three processes: 360 concurrent requests, exactly 120 allowed', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  const responses = await spread(360, ['/a', '/b', '/c'])
  t.same(count(responses.map((r) => r.status)), { 200: 120, 429: 240 })
  t.ok(responses.every((r) => r.policy === '"shared";q=120;w=3600'), 'RateLimit-Policy names the scope')
  const after = await spread(3, ['/a'])
  t.same(after.map((r) => r.status), [429, 429, 429], 'and the budget stays spent on every route and process')
})

t.test('the plugin-wide budget is one per client across routes and processes: 300 concurrent, exactly 90 allowed', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  const responses = await spread(300, ['/p1', '/p2'])
  t.same(count(responses.map((r) => r.status)), { 200: 90, 429: 210 })
  t.ok(responses.every((r) => r.policy === '"anon";q=90;w=3600'))
})

t.test('counting only failures across processes: 60 successes (more than the quota) are given back, 200 concurrent failures give exactly 40 tries', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  // A check reserves: in-flight logins count until their outcome is known. Batches of 20 (of a
  // quota of 40), each waiting for the previous one's refunds, never meet a full quota.
  const refunded = async (expected: number) => {
    const deadline = Date.now() + 5000
    let sum = 0
    while (Date.now() < deadline) {
      const stats = await Promise.all(bases.map(async (base) => await (await fetch(base + '/stats')).json() as { refunded: number }))
      sum = stats.reduce((total, s) => total + s.refunded, 0)
      if (sum >= expected) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return sum
  }
  for (let batch = 1; batch <= 3; batch++) {
    const good = await spread(20, ['/login'], { method: 'POST', headers: { 'x-password': 'right' } })
    t.same(count(good.map((r) => r.status)), { 200: 20 }, `batch ${batch}: right passwords pass`)
    t.equal(await refunded(20 * batch), 20 * batch, `batch ${batch}: each success given back`)
  }
  const bad = await spread(200, ['/login'], { method: 'POST', headers: { 'x-password': 'wrong' } })
  t.same(count(bad.map((r) => r.status)), { 401: 40, 429: 160 }, 'exactly the quota of wrong passwords reaches the handler')
  const after = await spread(3, ['/login'], { method: 'POST', headers: { 'x-password': 'right' } })
  t.same(after.map((r) => r.status), [429, 429, 429], 'once the failures used the quota, even a right password waits')
})
