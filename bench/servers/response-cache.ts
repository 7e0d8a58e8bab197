// One server of the response-cache benchmark; MODE picks what answers GET /:
// bare (no work), uncached (about 5 ms of CPU per request), ours (the same route cached by
// this suite), peer (the same work cached with async-cache-dedupe on Redis), bentocache (its
// Redis-only mode: an L2 store and no in-memory L1), ours-local (hits from the local tier),
// bentocache-tiered (its memory L1 + Redis L2 with its bus), toolkit (cache.getOrSet in the
// handler).
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { createCache } from 'async-cache-dedupe'
import { redis, cache as cachePlugin, responseCache } from '../../plugins/index.js'
import { announce } from '../harness.js'

const body = { items: Array.from({ length: 20 }, (_, i) => ({ id: i, title: `Listing ${i}`, price: 100 + i })) }

function work (): typeof body {
  const end = process.hrtime.bigint() + 5_000_000n
  while (process.hrtime.bigint() < end) { /* about 5 ms of CPU, like a page render */ }
  return body
}

const mode = process.env.MODE ?? 'bare'
const app = Fastify({ logger: false })

if (mode === 'bare') {
  app.get('/', async () => body)
} else if (mode === 'uncached') {
  app.get('/', async () => work())
} else if (mode === 'ours' || mode === 'ours-local') {
  // ours-local: hits from the cache toolkit's local tier (defaults: copies kept 1 s).
  const local = mode === 'ours-local'
  await app.register(redis, { url: process.env.REDIS_URL })
  await app.register(cachePlugin, { local })
  await app.register(responseCache, { local })
  app.get('/', { config: { cache: { ttl: '10m' } } }, async () => work())
} else if (mode === 'toolkit') {
  // The cache toolkit inside the handler: the value from Redis, serialized by Fastify again.
  await app.register(redis, { url: process.env.REDIS_URL })
  await app.register(cachePlugin, {})
  app.get('/', async () => app.cache.getOrSet('listings', async () => work(), { ttl: '10m' }))
} else if (mode === 'peer') {
  const client = new Redis(process.env.REDIS_URL as string)
  const peer = createCache({ ttl: 600, storage: { type: 'redis', options: { client } } }).define('page', async (_key: string) => work())
  app.get('/', async () => peer.page('listings'))
} else if (mode === 'bentocache') {
  // bentocache's Redis driver wants ioredis 5, so it lives in bench/peers (installed by the bench).
  const peers = new URL('../../../bench/peers/node_modules/bentocache/build/', import.meta.url)
  const { BentoCache, bentostore } = await import(new URL('index.js', peers).href)
  const { redisDriver } = await import(new URL('src/drivers/redis.js', peers).href)
  const url = new URL(process.env.REDIS_URL as string)
  const bento = new BentoCache({ default: 'redis', stores: { redis: bentostore().useL2Layer(redisDriver({ connection: { host: url.hostname, port: Number(url.port) } })) } })
  app.get('/', async () => bento.getOrSet({ key: 'listings', factory: async () => work(), ttl: '10m' }))
} else if (mode === 'bentocache-tiered') {
  // Its memory + Redis mode: an L1 in memory kept coherent across instances by its Redis bus.
  const peers = new URL('../../../bench/peers/node_modules/bentocache/build/', import.meta.url)
  const { BentoCache, bentostore } = await import(new URL('index.js', peers).href)
  const { redisDriver, redisBusDriver } = await import(new URL('src/drivers/redis.js', peers).href)
  const { memoryDriver } = await import(new URL('src/drivers/memory.js', peers).href)
  const url = new URL(process.env.REDIS_URL as string)
  const connection = { host: url.hostname, port: Number(url.port) }
  const store = bentostore().useL1Layer(memoryDriver({ maxSize: '10mb' })).useL2Layer(redisDriver({ connection })).useBus(redisBusDriver({ connection }))
  const bento = new BentoCache({ default: 'tiered', stores: { tiered: store } })
  app.get('/', async () => bento.getOrSet({ key: 'listings', factory: async () => work(), ttl: '10m' }))
} else {
  throw new Error(`unknown MODE ${mode}`)
}

await app.listen({ host: '127.0.0.1', port: 0 })
announce((app.server.address() as { port: number }).port)
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { app.close().finally(() => process.exit(0)) })
