// The cache toolkit against raw ioredis, in-process (no HTTP): `N` concurrent callers in a tight
// loop, each on its own key, so single-flight does not merge their reads. Then the Redis round
// trips of one hit, counted with MONITOR (commands a script runs inside Redis are not round trips).
import { pathToFileURL } from 'node:url'
import { Cluster, Redis } from 'ioredis'
import { createCache } from '../lib/cache/cache.js'
import type { Cache } from '../lib/cache/cache.js'
import type { LocalOptions } from '../lib/cache/options.js'
import { Keyspace } from '../lib/core/keys.js'
import { startCluster } from '../test/fixtures/redis-server.js'
import { benchRedis, report } from './harness.js'
import type { LoadResult, Report } from './harness.js'

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50)
const KEYS = CONCURRENCY
const VALUE = { id: 42, title: 'A post title', tags: ['a', 'b', 'c'], body: 'x'.repeat(200), at: new Date(0) }

/** CPU per operation, which a busy shared machine distorts far less than ops/s. */
export interface OpCost { name: string, nodeUsPerOp: number, redisUsPerOp: number }

/**
 * Server CPU (µs) that INFO commandstats counted since the last CONFIG RESETSTAT. Commands a
 * script runs are counted inside EVALSHA and again on their own: when scripts ran, only
 * EVALSHA counts.
 */
async function redisUsec (client: Redis): Promise<number> {
  const info = await client.info('commandstats')
  const usec = new Map([...info.matchAll(/^cmdstat_(\w+):calls=\d+,usec=(\d+)/gm)].map((m) => [m[1] as string, Number(m[2])]))
  usec.delete('info')
  usec.delete('config')
  if (usec.has('evalsha')) return usec.get('evalsha') as number
  return [...usec.values()].reduce((a, b) => a + b, 0)
}

/** Runs `op` from CONCURRENCY callers for `seconds` (after a 1 s warm-up); ops/s and p99. */
async function loop (name: string, op: (i: number) => Promise<unknown>, seconds: number, costs?: { client: Redis, list: OpCost[] }): Promise<LoadResult> {
  const run = async (ms: number, record: boolean): Promise<{ ops: number, lat: number[] }> => {
    const end = Date.now() + ms
    const lat: number[] = []
    let ops = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint()
        await op(w)
        ops++
        if (record && ops % 16 === 0) lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
      }
    }))
    return { ops, lat }
  }
  await run(1000, false)
  await costs?.client.config('RESETSTAT')
  const cpu = process.cpuUsage()
  const { ops, lat } = await run(seconds * 1000, true)
  const used = process.cpuUsage(cpu)
  if (costs) {
    const round = (n: number): number => Math.round(n * 10) / 10
    costs.list.push({ name, nodeUsPerOp: round((used.user + used.system) / ops), redisUsPerOp: round(await redisUsec(costs.client) / ops) })
  }
  lat.sort((a, b) => a - b)
  return { name, reqPerSec: Math.round(ops / seconds), p99Ms: Math.round((lat[Math.floor(lat.length * 0.99)] ?? 0) * 100) / 100, non2xx: 0, errors: 0 }
}

/** Client-sent commands (not those a script runs) per call of `op`, counted with MONITOR on every master. */
async function commandsPerCall (client: Redis | Cluster, prefix: string, op: () => Promise<unknown>, calls = 200): Promise<Record<string, number>> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client]
  const counts: Record<string, number> = {}
  const monitors = await Promise.all(nodes.map((n) => n.monitor()))
  for (const m of monitors) {
    m.on('monitor', (_time: string, args: string[], source: string) => {
      if (source === 'lua' || !args.some((a) => a.includes(prefix))) return
      const name = String(args[0]).toLowerCase()
      counts[name] = (counts[name] ?? 0) + 1
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  for (let i = 0; i < calls; i++) await op()
  await new Promise((resolve) => setTimeout(resolve, 300))
  await Promise.all(monitors.map((m) => m.disconnect()))
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Math.round((v / calls) * 100) / 100]))
}

function cacheOn (client: Redis | Cluster, prefix: string, local?: LocalOptions): Cache {
  return createCache(client, { keyspace: new Keyspace({ prefix, feature: 'cache' }), ttl: '1h', commandTimeout: 1000, ...(local === undefined ? {} : { local }) })
}

export interface CacheBenchReport extends Report {
  /** Client-sent commands per hit by name, standalone and Cluster. */
  commandsPerHit: Record<string, Record<string, number>>
  /** Node and Redis CPU per operation, by row. */
  costs: OpCost[]
}

export async function run (): Promise<CacheBenchReport> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5)
  const server = await benchRedis()
  const client = new Redis(server.url)
  const cache = cacheOn(client, 'bench')
  const factory = async () => VALUE
  for (let i = 0; i < KEYS; i++) {
    await client.set(`raw:${i}`, JSON.stringify(VALUE))
    await cache.getOrSet(`k${i}`, factory)
  }
  const rows: LoadResult[] = []
  // Interleaved twice; the median of each pair would need more time than a short run has.
  const costs = { client, list: [] as OpCost[] }
  rows.push(await loop('raw ioredis GET', (i) => client.get(`raw:${i}`), seconds, costs))
  rows.push(await loop('raw GET + JSON.parse', async (i) => JSON.parse((await client.get(`raw:${i}`)) ?? 'null'), seconds, costs))
  if (process.env.BENCH_DEBUG) {
    const keys = Array.from({ length: KEYS }, (_, i) => cache.key(`k${i}`))
    rows.push(await loop('raw frsCacheGet script', (i) => client.frsCacheGetBuffer(1, keys[i] as string), seconds, costs))
  }
  rows.push(await loop('cache.get hit', (i) => cache.get(`k${i}`), seconds, costs))
  rows.push(await loop('cache.getOrSet hit', (i) => cache.getOrSet(`k${i}`, factory), seconds, costs))
  // The local tier: the same reads answered from this process's memory (copies kept for a minute,
  // dropped only by an invalidation).
  const local = cacheOn(client, 'benchlocal', { ttl: '1m' })
  while (local.core.local?.live !== true) await new Promise((resolve) => setTimeout(resolve, 10))
  for (let i = 0; i < KEYS; i++) await local.getOrSet(`k${i}`, factory)
  rows.push(await loop('cache.get hit, local tier', (i) => local.get(`k${i}`), seconds, costs))
  rows.push(await loop('cache.getOrSet hit, local tier', (i) => local.getOrSet(`k${i}`, factory), seconds, costs))
  await local.close()
  await cache.set('tagged', VALUE, { tags: ['t1', 't2'] })
  const commandsPerHit: Record<string, Record<string, number>> = {
    standalone: await commandsPerCall(client, 'bench', () => cache.getOrSet('k0', factory)),
    'standalone, 2 tags': await commandsPerCall(client, 'bench', () => cache.getOrSet('tagged', factory))
  }
  await client.quit()
  await server.stop()

  const cluster = await startCluster(3)
  const cc = new Cluster(cluster.nodes)
  try {
    const ccache = cacheOn(cc, 'bench')
    await ccache.getOrSet('k0', factory)
    await ccache.set('tagged', VALUE, { tags: ['t1', 't2'] })
    commandsPerHit.cluster = await commandsPerCall(cc, 'bench', () => ccache.getOrSet('k0', factory))
    commandsPerHit['cluster, 2 tags'] = await commandsPerCall(cc, 'bench', () => ccache.getOrSet('tagged', factory))
    commandsPerHit['cluster, 2 tags given'] = await commandsPerCall(cc, 'bench', () => ccache.getOrSet('tagged', factory, { tags: ['t1', 't2'] }))
  } finally {
    await cc.quit()
    await cluster.stop()
  }
  const out = report('cache', `cache toolkit: a hit vs raw ioredis GET (${CONCURRENCY} concurrent callers, in-process)`, 'raw ioredis GET', rows)
  console.log('CPU per operation (µs):')
  console.table(costs.list)
  console.log('Client-sent Redis commands per getOrSet hit (MONITOR):')
  console.table(commandsPerHit)
  return { ...out, commandsPerHit, costs: costs.list }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1) })
}
