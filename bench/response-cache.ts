// Response cache benchmark: a route costing about 5 ms of CPU, uncached and cached by this
// suite and by async-cache-dedupe (Redis storage), against a bare route with the same body.
import { fileURLToPath } from 'node:url'
import { installPeers, interleaved, load, report } from './harness.js'
import type { Report, ServerRow } from './harness.js'

const ROWS: ServerRow[] = [
  ['bare route', 'bare'],
  ['uncached (5 ms CPU)', 'uncached'],
  ['fastify-redis-suite response cache', 'ours'],
  ['fastify-redis-suite response cache, local tier', 'ours-local'],
  ['fastify-redis-suite cache.getOrSet in the handler', 'toolkit'],
  ['async-cache-dedupe (redis storage)', 'peer'],
  ['bentocache (redis only)', 'bentocache'],
  ['bentocache (memory + redis, bus)', 'bentocache-tiered']
].map(([name, mode]) => ({ name: name as string, server: 'response-cache', env: { MODE: mode as string } }))

export async function run (): Promise<Report> {
  // bentocache needs ioredis 5, so it gets its own node_modules in bench/peers.
  installPeers(['bentocache'])
  const rows = await interleaved(ROWS, async (row, server) => await load({ name: row.name, url: server.url + '/' }))
  return report('response-cache', `Response cache: GET of a route costing 5 ms CPU (median of ${process.env.BENCH_ROUNDS ?? 3})`, 'bare route', rows)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()
