// Response cache benchmark: a route costing about 5 ms of CPU, uncached and cached by this
// suite and by async-cache-dedupe (Redis storage), against a bare route with the same body.
import { fileURLToPath } from 'node:url'
import { benchRedis, installPeers, load, median, report, startServer } from './harness.js'
import type { LoadResult, Report } from './harness.js'

const ROWS: Array<[string, string]> = [
  ['bare route', 'bare'],
  ['uncached (5 ms CPU)', 'uncached'],
  ['fastify-redis-suite response cache', 'ours'],
  ['async-cache-dedupe (redis storage)', 'peer'],
  ['bentocache (redis only)', 'bentocache']
]

export async function run (): Promise<Report> {
  // bentocache needs ioredis 5, so it gets its own node_modules in bench/peers.
  installPeers(['bentocache'])
  const redis = await benchRedis()
  const repeat = Number(process.env.BENCH_REPEAT ?? 3)
  const results = new Map<string, LoadResult[]>()
  try {
    for (let i = 0; i < repeat; i++) {
      for (const [name, mode] of ROWS) {
        const server = await startServer('response-cache', { MODE: mode, REDIS_URL: redis.url })
        try {
          const r = await load({ name, url: server.url + '/' })
          results.set(name, [...(results.get(name) ?? []), r])
        } finally {
          await server.stop()
        }
      }
    }
  } finally {
    await redis.stop()
  }
  return report('response-cache', `Response cache: GET of a route costing 5 ms CPU (median of ${repeat})`, 'bare route', ROWS.map(([name]) => median(results.get(name) ?? [])))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()
