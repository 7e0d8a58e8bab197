// Claims across instances, over real HTTP: three Express app processes on one Redis, hundreds
// of concurrent requests spread over them. A shared budget allows exactly its quota; a code
// verifies once however many verifies race; session writes acknowledged by one process are
// there for the others.
import t from 'tap'
import { startAppProcess } from './fixtures/app-process.js'
import { cookieOf } from './fixtures/express-app.js'
import { freshPrefix, memoryMode, needsRedis } from './fixtures/redis.js'

const prefix = freshPrefix()
// (none on the memory engine, where every test here is skipped)
const bases = memoryMode ? [] : await Promise.all([1, 2, 3].map(async () => (await startAppProcess(t, 'express-process-app.ts', { PREFIX: prefix, SHARED_RATE: '120/hour' })).ready.base))
const on = (i: number): string => bases[i % 3] as string

t.test('a scope shared by two routes in three processes: 360 concurrent requests, exactly 120 allowed', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  const statuses = await Promise.all(Array.from({ length: 360 }, async (_, i) => {
    const res = await fetch(on(i) + (i % 2 === 0 ? '/a' : '/b'))
    await res.arrayBuffer()
    return res.status
  }))
  t.equal(statuses.filter((s) => s === 200).length, 120)
  t.equal(statuses.filter((s) => s === 429).length, 240)
})

t.test('a one-time code verified by 150 concurrent requests over three processes works exactly once', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  const { code } = await (await fetch(on(0) + '/otp/issue?subject=a%40example.com', { method: 'POST' })).json() as { code: string }
  const results = await Promise.all(Array.from({ length: 150 }, async (_, i) =>
    (await (await fetch(`${on(i)}/otp/verify?subject=a%40example.com&code=${code}`, { method: 'POST' })).json() as { status: string }).status))
  t.equal(results.filter((s) => s === 'ok').length, 1)
  t.equal(results.filter((s) => s === 'expired').length, 149)
})

t.test('no lost session write: 200 concurrent logins over three processes all read back; one session written in turn by each process keeps every write', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  const cookies = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
    const res = await fetch(`${on(i)}/login?user=u${i}`, { method: 'POST' })
    t.equal(res.status, 200)
    return cookieOf(res) as string
  }))
  const users = await Promise.all(cookies.map(async (cookie, i) => (await (await fetch(on(i + 1) + '/me', { headers: { cookie } })).json() as { user: string }).user))
  t.same(users, cookies.map((_, i) => `u${i}`), 'every acknowledged login is read by another process')
  const cookie = cookies[0] as string
  for (let i = 0; i < 30; i++) t.equal(((await (await fetch(on(i) + '/inc', { method: 'POST', headers: { cookie } })).json()) as { n: number }).n, i + 1)
  t.same(await (await fetch(on(2) + '/me', { headers: { cookie } })).json(), { user: 'u0', n: 30 })
})
