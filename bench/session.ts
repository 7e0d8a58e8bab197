// Sessions: this suite's plugin against @fastify/session + connect-redis (node-redis) on the
// same Redis, in one run: a read-mostly route (reads the session, never changes it) and a
// read-write route (changes it on every request). Goal: read-mostly at least 2× the peer.
//
// Two settings: Redis on loopback (each server is CPU-bound on HTTP and @fastify/session,
// so Redis round trips cost little), and Redis behind a link that adds BENCH_REDIS_DELAY_MS
// (default 1) each way, as when Redis runs on another host, with 10 connections: there a
// request's time is mostly its round trips (ours: 1 on a read, the peer: 2).
//
// In both settings one more row: ours with `localCache` (1 s), which serves repeated reads
// from memory. On loopback another: ours with ioredis auto-pipelining on top of the core
// plugin's write coalescing.
import { createConnection, createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { pathToFileURL } from 'node:url'
import { benchRedis, load, median, report, startServer } from './harness.js'
import type { BenchServer, LoadResult, Report } from './harness.js'

async function loginCookie (base: string): Promise<string> {
  const res = await fetch(`${base}/login`, { method: 'POST' })
  const cookie = res.headers.get('set-cookie')?.split(';')[0]
  if (res.status !== 200 || cookie === undefined) throw new Error(`login at ${base} failed: ${res.status}`)
  return cookie
}

/** A TCP relay to `target` that delays every chunk by `delayMs` each way, in order. */
async function slowLink (target: URL, delayMs: number): Promise<{ url: string, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const relay = (from: Socket, to: Socket) => from.on('data', (chunk) => setTimeout(() => to.write(chunk), delayMs))
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) })
    for (const s of [client, upstream]) { sockets.add(s); s.setNoDelay(true); s.on('error', () => {}); s.on('close', () => { client.destroy(); upstream.destroy() }) }
    relay(client, upstream)
    relay(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) })
  }
}

// Every row BENCH_ROUNDS times (default 3), rounds interleaved, each row's median kept: one
// pass is not enough on a machine whose speed drifts between rows.
async function measure (label: string, servers: Record<string, BenchServer>, connections: number): Promise<LoadResult[]> {
  const results = new Map<string, LoadResult[]>()
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
  for (let round = 0; round < rounds; round++) {
    for (const [route, method] of [['read', 'GET'], ['write', 'POST']] as const) {
      for (const [name, server] of Object.entries(servers)) {
        const cookie = await loginCookie(server.url)
        const result = await load({ name: `${label} ${route}: ${name}`, url: `${server.url}/${route}`, method, headers: { cookie }, connections })
        if (result.non2xx > 0 || result.errors > 0) console.warn(`${result.name}: ${result.non2xx} non-2xx, ${result.errors} errors`)
        results.set(result.name, [...(results.get(result.name) ?? []), result])
      }
    }
  }
  return [...results.values()].map(median)
}

async function withServers <T> (redisUrl: string, extra: boolean, fn: (servers: Record<string, BenchServer>) => Promise<T>): Promise<T> {
  const servers: Record<string, BenchServer> = {
    'connect-redis': await startServer('session-peer', { REDIS_URL: redisUrl }),
    ours: await startServer('session-ours', { REDIS_URL: redisUrl }),
    'ours, localCache': await startServer('session-ours', { REDIS_URL: redisUrl, LOCAL_CACHE: '1s' })
  }
  if (extra) servers['ours, auto-pipelining'] = await startServer('session-ours', { REDIS_URL: redisUrl, AUTO_PIPELINING: '1' })
  try {
    return await fn(servers)
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()))
  }
}

export async function run (): Promise<Report> {
  const redis = await benchRedis()
  const link = await slowLink(new URL(redis.url), Number(process.env.BENCH_REDIS_DELAY_MS ?? 1))
  try {
    const bare = await startServer('bare')
    const baseline = await load({ name: 'bare route', url: bare.url + '/' }).finally(() => bare.stop())
    const rows = [
      baseline,
      ...await withServers(redis.url, true, (servers) => measure('loopback', servers, 50)),
      ...await withServers(link.url, false, (servers) => measure('remote', servers, 10))
    ]
    const out = report('session', 'Sessions: ours vs @fastify/session + connect-redis (node-redis), one Redis', 'bare route', rows)
    const rate = (name: string) => rows.find((r) => r.name === name)?.reqPerSec ?? NaN
    for (const setting of ['loopback', 'remote']) {
      for (const route of ['read', 'write']) {
        for (const ours of ['ours', 'ours, localCache']) {
          const ratio = rate(`${setting} ${route}: ${ours}`) / rate(`${setting} ${route}: connect-redis`)
          console.log(`${setting} ${route}: ${ours} / connect-redis = ${ratio.toFixed(2)}×`)
        }
      }
    }
    for (const route of ['read', 'write']) {
      const peer = rate(`loopback ${route}: connect-redis`)
      console.log(`loopback ${route}: ours, auto-pipelining / connect-redis = ${(rate(`loopback ${route}: ours, auto-pipelining`) / peer).toFixed(2)}×`)
    }
    return out
  } finally {
    await link.close()
    await redis.stop()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run()
