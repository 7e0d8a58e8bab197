// Faults under load, over real HTTP: while hundreds of requests are in flight to a cached
// route, a rate-limited route, a session route and an OTP route, Redis stops answering
// (CLIENT PAUSE) or dies. Every request is answered by its plugin's policy within one
// commandTimeout plus a small slack, and each plugin logs a few warning lines, not one a request.
import t from 'tap'
import type { TeardownHost } from './fixtures/app.js'
import { startAppProcess } from './fixtures/app-process.js'
import { freshPrefix, rawClient, testRedis } from './fixtures/redis.js'

const redis = await testRedis()
const COMMAND_TIMEOUT = 300
// What a request may take beyond the command timeout and the app's own event-loop delay.
const SLACK = 250

interface Sample { route: string, status: number, ms: number, serverMs: number }

async function start (t: TeardownHost) {
  const app = await startAppProcess<{ base: string, cookie: string }>(t, 'fault-app.ts', { PREFIX: freshPrefix(), COMMAND_TIMEOUT: String(COMMAND_TIMEOUT) })
  return { ...app.ready, lines: app.lines as Array<{ level: number, msg: string }> }
}

async function load (base: string, cookie: string, n: number): Promise<Sample[]> {
  const routes: Array<[string, RequestInit]> = [
    ['/page', {}], ['/limited', {}], ['/me', { headers: { cookie } }], ['/code', { method: 'POST' }]
  ]
  return await Promise.all(Array.from({ length: n }, async (_, i) => {
    const [route, init] = routes[i % routes.length] as [string, RequestInit]
    // Spread over about 200 ms, so that the fault lands among requests in flight.
    await new Promise((resolve) => setTimeout(resolve, i / 2))
    const started = performance.now()
    const res = await fetch(base + route, init)
    await res.arrayBuffer()
    return { route, status: res.status, ms: performance.now() - started, serverMs: Number(res.headers.get('x-elapsed-ms')) }
  }))
}

function worst (samples: Sample[], route: string, key: 'ms' | 'serverMs'): number {
  return Math.round(Math.max(...samples.filter((s) => s.route === route).map((s) => s[key])))
}

for (const fault of ['paused', 'killed'] as const) {
  t.test(`Redis ${fault} under 400 requests in flight`, { skip: !redis.controllable && 'this Redis cannot be stopped or paused' }, async (t) => {
    const { base, cookie, lines } = await start(t)
    const warm = await load(base, cookie, 40)
    t.ok(warm.every((s) => s.status === 200), 'all 200 while Redis is up')
    const before = lines.length

    const admin = rawClient(redis)
    t.teardown(() => admin.disconnect())
    await admin.ping() // connected (and, on a Cluster, the slots known) before the load starts
    await fetch(base + '/lag/reset', { method: 'POST' })
    const inFlight = load(base, cookie, 400)
    await new Promise((resolve) => setTimeout(resolve, 40))
    if (fault === 'paused') {
      // Stalls every client (ours included) without closing a socket: replies never come.
      if (redis.mode === 'cluster') await Promise.all((admin as import('ioredis').Cluster).nodes('master').map((n) => n.client('PAUSE', 2500, 'ALL')))
      else await admin.client('PAUSE', 2500, 'ALL')
    } else {
      await redis.stop()
      t.teardown(() => redis.start())
    }
    const samples = await inFlight
    const statuses = (route: string) => [...new Set(samples.filter((s) => s.route === route).map((s) => s.status))].sort()

    t.same(statuses('/page').filter((s) => s !== 200), [], 'response cache fails open: every page served')
    t.same(statuses('/limited').filter((s) => s !== 200), [], 'rate limiter fails open by default')
    t.same(statuses('/me').filter((s) => s !== 200 && s !== 503), [], 'sessions: the session or a clear 503, nothing else')
    t.same(statuses('/code').filter((s) => s !== 200 && s !== 503), [], 'OTP fails closed with 503')
    t.ok(samples.some((s) => s.route === '/code' && s.status === 503), 'OTP did refuse while Redis was down')
    // Time in the app, bounded by one commandTimeout plus however late its event loop ran
    // (on a loaded machine the whole process is late, Redis or not).
    const { maxMs } = await (await fetch(base + '/lag')).json() as { maxMs: number }
    const bound = COMMAND_TIMEOUT + Math.round(maxMs) + SLACK
    for (const route of ['/page', '/limited', '/me', '/code']) {
      const ms = worst(samples, route, 'serverMs')
      t.ok(ms <= bound, `${route}: worst ${ms}ms in the app (${worst(samples, route, 'ms')}ms at the client); bound ${bound}ms = commandTimeout ${COMMAND_TIMEOUT} + event-loop delay ${Math.round(maxMs)} + ${SLACK}`)
    }

    // The plugins' own warnings; a 503 that a route answers is also logged by Fastify once per
    // request (as every 5xx is): those are request logs, left out here.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const warnings = lines.slice(before).filter((l) => l.level === 40)
    const counts: Record<string, number> = {}
    for (const w of warnings) {
      const plugin = /^(response cache|rate limiter|otp|cache|redis connection|session)/.exec(w.msg)?.[1] ?? w.msg
      counts[plugin] = (counts[plugin] ?? 0) + 1
    }
    t.comment(`warning lines: ${JSON.stringify(counts)}`)
    for (const [plugin, n] of Object.entries(counts)) t.ok(n <= 6, `${plugin}: ${n} warning line(s) for 400 requests`)
  })
}
