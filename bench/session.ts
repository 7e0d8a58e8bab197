// Sessions: this suite's plugin against @fastify/session + connect-redis (node-redis) on the
// same Redis, in one run: a read-mostly route (reads the session, never changes it) and a
// read-write route (changes it on every request). Goal: read-mostly at least 2× the peer.
import { pathToFileURL } from 'node:url'
import { benchRedis, load, report, startServer } from './harness.js'
import type { LoadResult, Report } from './harness.js'

async function loginCookie (base: string): Promise<string> {
  const res = await fetch(`${base}/login`, { method: 'POST' })
  const cookie = res.headers.get('set-cookie')?.split(';')[0]
  if (res.status !== 200 || cookie === undefined) throw new Error(`login at ${base} failed: ${res.status}`)
  return cookie
}

export async function run (): Promise<Report> {
  const redis = await benchRedis()
  const servers = {
    'connect-redis': await startServer('session-peer', { REDIS_URL: redis.url }),
    ours: await startServer('session-ours', { REDIS_URL: redis.url }),
    'ours+autopipelining': await startServer('session-ours', { REDIS_URL: redis.url, AUTOPIPELINE: '1' })
  }
  try {
    const rows: LoadResult[] = []
    for (const [route, method] of [['read', 'GET'], ['write', 'POST']] as const) {
      for (const [name, server] of Object.entries(servers)) {
        const cookie = await loginCookie(server.url)
        const result = await load({ name: `${route}: ${name}`, url: `${server.url}/${route}`, method, headers: { cookie } })
        if (result.non2xx > 0 || result.errors > 0) console.warn(`${result.name}: ${result.non2xx} non-2xx, ${result.errors} errors`)
        rows.push(result)
      }
    }
    const out = report('session', 'Sessions: ours vs @fastify/session + connect-redis (node-redis), one Redis', 'read: connect-redis', rows)
    const rate = (name: string) => rows.find((r) => r.name === name)?.reqPerSec ?? NaN
    for (const route of ['read', 'write']) {
      for (const ours of ['ours', 'ours+autopipelining']) {
        console.log(`${route}: ${ours} / connect-redis = ${(rate(`${route}: ${ours}`) / rate(`${route}: connect-redis`)).toFixed(2)}×`)
      }
    }
    return out
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()))
    await redis.stop()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run()
