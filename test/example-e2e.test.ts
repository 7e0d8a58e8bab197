// End to end: boots the example app in its own process on a loopback port and walks its flows
// over real HTTP: cache MISS then HIT, invalidation, a 429 with its headers, an OTP login, and
// a session that survives a restart of the app process.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { clusterMode, memoryMode, testRedis } from './fixtures/redis.js'
import { freePort } from './fixtures/redis-server.js'
import { mailedCode } from './fixtures/example.js'

const redis = await testRedis()
const server = fileURLToPath(new URL('../example-app/server.ts', import.meta.url))

interface Running { base: string, mails: Array<{ to: string, body: string }>, stop: () => Promise<void> }

async function boot (port: number): Promise<Running> {
  const child: ChildProcess = spawn(process.execPath, [...process.execArgv, server], {
    env: {
      ...process.env,
      REDIS_URL: redis.connection.url,
      PORT: String(port),
      NODE_ENV: 'development',
      SESSION_SECRET: 's'.repeat(40),
      OTP_SECRET: 'o'.repeat(40),
      ANON_RATE: '10000/minute',
      LOG_LEVEL: 'info'
    },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const mails: Running['mails'] = []
  await new Promise<void>((resolve, reject) => {
    let buffer = ''
    const timer = setTimeout(() => reject(new Error('example did not start')), 60_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        try {
          const entry = JSON.parse(line) as { msg?: string, mail?: { to: string, body: string } }
          if (entry.mail) mails.push(entry.mail)
          if (entry.msg?.startsWith('Server listening')) { clearTimeout(timer); resolve() }
        } catch {}
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`example exited with ${code}`)) })
  })
  return {
    base: `http://127.0.0.1:${port}/api`,
    mails,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGTERM')
    })
  }
}

t.test('the example app over real HTTP', { skip: clusterMode ? 'the example takes REDIS_URL (standalone); its plugins are covered on the Cluster by their own tests' : false }, async (t) => {
  const port = await freePort()
  let app = await boot(port)
  t.teardown(() => app.stop())
  const get = (path: string, headers: Record<string, string> = {}) => fetch(app.base + path, { headers })
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(app.base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

  // a cache HIT after a MISS, and the queries it saves
  const miss = await get('/listings')
  t.equal(miss.headers.get('x-cache'), 'MISS')
  const listings = await miss.json() as unknown[]
  const queries = (await (await get('/stats')).json() as { dbQueries: number }).dbQueries
  const hit = await get('/listings')
  t.equal(hit.headers.get('x-cache'), 'HIT')
  t.same(await hit.json(), listings)
  t.equal((await (await get('/stats')).json() as { dbQueries: number }).dbQueries, queries, 'the HIT ran no query')

  // OTP login: the code arrives by (logged) email
  t.same(await (await post('/auth/code', { email: 'Alice@Example.com' })).json(), { sent: true })
  t.same(await (await post('/auth/code', { email: 'nobody@example.com' })).json(), { sent: true }, 'same answer for an unknown email')
  const code = await mailedCode(() => app.mails, 'alice@example.com')
  t.ok(code, 'the code was mailed')
  t.equal((await post('/auth/verify', { email: 'alice@example.com', code: code === '000000' ? '111111' : '000000' })).status, 400, 'a wrong code is refused')
  const verified = await post('/auth/verify', { email: 'alice@example.com', code })
  t.equal(verified.status, 200)
  const cookie = (verified.headers.get('set-cookie') ?? '').split(';')[0] as string
  t.match(cookie, /^sessionId=/)
  const auth = { cookie }
  t.equal((await get('/me/dashboard', auth)).status, 200)
  t.equal((await get('/me/dashboard', auth)).headers.get('x-cache'), 'HIT', 'the dashboard is cached per user')

  // an invalidation: a new listing makes the list a MISS
  const created = await post('/listings', { title: 'Loft by the sea', city: 'Lisbon', price: 120 }, auth)
  t.equal(created.status, 201)
  const after = await get('/listings')
  t.equal(after.headers.get('x-cache'), 'MISS')
  t.equal((await after.json() as unknown[]).length, listings.length + 1)

  // bookings: 5 an hour per user, then a 429 with its headers
  const statuses: number[] = []
  let limited: Response | undefined
  for (let i = 0; i < 6; i++) {
    const res = await post('/bookings', { listingId: 1, nights: 2 }, auth)
    statuses.push(res.status)
    if (res.status === 429) limited = res
  }
  t.same(statuses, [201, 201, 201, 201, 201, 429])
  t.ok(Number(limited?.headers.get('retry-after')) > 0, 'Retry-After')
  t.match(limited?.headers.get('ratelimit-policy') ?? '', /q=5/)
  t.match(limited?.headers.get('ratelimit') ?? '', /r=0/)
  t.equal((await get('/me/dashboard', auth)).headers.get('x-cache'), 'MISS', 'a booking invalidated the dashboard')

  // the session survives a restart of the app process, in Redis; on the memory engine the data
  // lives in the process, and a restart logs everybody out (as documented)
  await app.stop()
  app = await boot(port)
  const again = await get('/me/dashboard', auth)
  if (memoryMode) {
    t.equal(again.status, 401, 'memory engine: the restart lost the session')
    return
  }
  t.equal(again.status, 200)
  t.equal((await again.json() as { user: { email: string } }).user.email, 'alice@example.com')

  // logout ends it
  await post('/auth/logout', {}, auth)
  t.equal((await get('/me/dashboard', auth)).status, 401)
})
