// The rate limiter against a bare route and against @fastify/rate-limit with its Redis store,
// in one run, with and without ioredis auto-pipelining. Rows run interleaved, BENCH_ROUNDS
// times (default 3), and each row keeps its median (harness interleaved()).
//
// Two kinds of traffic: one client (every request counts on one key, as when one user, one
// NAT or one route-wide limit takes the load), and 10,000 clients keyed by a header (one key
// per client, round robin), where no two requests of a batch share a key.
import { fileURLToPath } from 'node:url'
import { interleaved, load, report } from './harness.js'
import type { Report } from './harness.js'

const CLIENTS = { name: 'x-client', clients: 10_000 }
const ROWS: Array<{ name: string, server: string, env?: Record<string, string>, clientHeader?: typeof CLIENTS }> = [
  { name: 'bare', server: 'bare' },
  { name: 'suite rate-limit', server: 'rate-limit-suite' },
  { name: 'suite rate-limit, auto-pipelining', server: 'rate-limit-suite', env: { AUTO_PIPELINING: '1' } },
  { name: 'suite rate-limit, metrics', server: 'rate-limit-metrics' },
  { name: '@fastify/rate-limit (redis)', server: 'rate-limit-peer' },
  { name: '@fastify/rate-limit (redis), auto-pipelining', server: 'rate-limit-peer', env: { AUTO_PIPELINING: '1' } },
  { name: 'suite rate-limit, 10,000 clients', server: 'rate-limit-suite', env: { KEY_HEADER: CLIENTS.name }, clientHeader: CLIENTS },
  { name: '@fastify/rate-limit (redis), 10,000 clients', server: 'rate-limit-peer', env: { KEY_HEADER: CLIENTS.name }, clientHeader: CLIENTS }
]

export async function run (): Promise<Report> {
  const rows = await interleaved(ROWS, async (row, server) => await load({ name: row.name, url: server.url + '/', clientHeader: row.clientHeader }))
  const out = report('rate-limit', 'Rate limiting: one Redis round trip per request', 'bare', rows)
  const rps = (name: string) => rows.find((r) => r.name === name)?.reqPerSec ?? NaN
  const ratio = (a: string, b: string) => (rps(a) / rps(b)).toFixed(2)
  console.log(`suite / @fastify/rate-limit: ${ratio('suite rate-limit', '@fastify/rate-limit (redis)')}x (goal >= 1.25x); suite / bare: ${ratio('suite rate-limit', 'bare')}x (goal >= 0.69x)`)
  console.log(`10,000 clients: suite / @fastify/rate-limit: ${ratio('suite rate-limit, 10,000 clients', '@fastify/rate-limit (redis), 10,000 clients')}x; suite / bare: ${ratio('suite rate-limit, 10,000 clients', 'bare')}x`)
  console.log(`metrics: suite with / without: ${ratio('suite rate-limit, metrics', 'suite rate-limit')}x (goal >= 0.95x)`)
  console.log(`auto-pipelining: suite ${ratio('suite rate-limit, auto-pipelining', 'suite rate-limit')}x, @fastify/rate-limit ${ratio('@fastify/rate-limit (redis), auto-pipelining', '@fastify/rate-limit (redis)')}x of the same without`)
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()
