// Startup of the core plugin: unreachable servers fail fast with one line naming the
// connection, connectTimeout fits in Fastify's pluginTimeout, and old servers are refused.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { Redis } from 'ioredis'
import redisPlugin from '../plugins/redis.js'
import type { RedisPluginOptions } from '../plugins/redis.js'
import { clusterMode, freshPrefix, rawClient, testRedis } from './fixtures/redis.js'
import { freePort } from './fixtures/redis-server.js'

const redis = await testRedis()

async function startup (opts: RedisPluginOptions, fastifyOpts: { pluginTimeout?: number } = {}) {
  const app = Fastify(fastifyOpts)
  app.register(redisPlugin, { prefix: freshPrefix(), ...opts })
  const started = Date.now()
  const err = await app.ready().then(() => null, (e: Error) => e) as (Error & { code?: string, cause?: { code?: string } }) | null
  const elapsed = Date.now() - started
  return { app, err, elapsed }
}

t.test('a refused connection fails startup within about a second, in one line naming the connection and host:port; a server up within that second is used', async (t) => {
  const port = await freePort()
  const { app, err, elapsed } = await startup({ url: `redis://127.0.0.1:${port}`, connectTimeout: '8s', connections: {} })
  t.teardown(() => app.close())
  t.equal(err?.code, 'FRS_REDIS_UNREACHABLE')
  t.equal(err?.message, `Redis connection "default" at 127.0.0.1:${port} refused the connection (ECONNREFUSED)`)
  t.equal(err?.cause?.code, 'ECONNREFUSED')
  t.ok(elapsed < 2000, `failed after ${elapsed}ms, not after connectTimeout (8s)`)
  if (!clusterMode && redis.mode !== 'memory') await lateServer(t) // a TCP proxy to the server
})

// A server that starts listening within the second after a refusal is connected to.
async function lateServer (t: Test): Promise<void> {
  const target = new URL(redis.connection.url as string)
  const port = await freePort()
  const sockets = new Set<Socket>()
  let proxy: Server | undefined
  // A server that comes up 300 ms after the first refusal, as in a compose file started together.
  const opening = setTimeout(() => {
    proxy = createServer((socket) => {
      const upstream = connect(Number(target.port), target.hostname)
      sockets.add(socket).add(upstream)
      socket.pipe(upstream).pipe(socket)
      socket.on('error', () => upstream.destroy())
      upstream.on('error', () => socket.destroy())
    }).listen(port, '127.0.0.1')
  }, 300)
  t.teardown(() => { clearTimeout(opening); for (const s of sockets) s.destroy(); proxy?.close() })
  const { app, err } = await startup({ url: `redis://127.0.0.1:${port}`, connectTimeout: '8s' })
  t.teardown(() => app.close())
  t.equal(err, null)
  t.equal(await app.redis.ping(), 'PONG')
}

t.test('a refused named connection is named', async (t) => {
  const port = await freePort()
  const { app, err, elapsed } = await startup({ ...redis.connection, connectTimeout: '8s', connections: { sessions: `redis://127.0.0.1:${port}/2` } })
  t.teardown(() => app.close())
  t.match(err, { code: 'FRS_REDIS_UNREACHABLE', message: `"sessions" at 127.0.0.1:${port} refused` })
  t.ok(elapsed < 2000, `failed after ${elapsed}ms`)
})

t.test('a Cluster whose startup nodes all refuse fails startup within about a second', async (t) => {
  const ports = [await freePort(), await freePort()]
  const { app, err, elapsed } = await startup({ cluster: ports.map((port) => ({ host: '127.0.0.1', port })), connectTimeout: '8s' })
  t.teardown(() => app.close())
  t.equal(err?.code, 'FRS_REDIS_UNREACHABLE')
  t.equal(err?.message, `Redis connection "default" at cluster ${ports.map((p) => `127.0.0.1:${p}`).join(',')} refused the connection (ECONNREFUSED) on every startup node`)
  t.ok(elapsed < 2500, `failed after ${elapsed}ms, not after connectTimeout (8s)`)
})

t.test('a Cluster node that accepts but never answers is waited for until connectTimeout, not refused early', async (t) => {
  const silent: Socket[] = []
  const server: Server = createServer((socket) => { silent.push(socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of silent) s.destroy(); server.close() })
  const port = (server.address() as { port: number }).port
  const { app, err, elapsed } = await startup({ cluster: [{ host: '127.0.0.1', port }], connectTimeout: '2s' })
  t.teardown(() => app.close())
  t.equal(err?.code, 'FRS_REDIS_UNREACHABLE')
  t.match(err?.message, /was not ready within 2000ms/)
  t.ok(elapsed >= 1900, `waited ${elapsed}ms: a slow server is not taken for a refusing one`)
})

t.test('an unknown host fails startup within about a second', async (t) => {
  const { app, err, elapsed } = await startup({ url: 'redis://frs-no-such-host.invalid:6390', connectTimeout: '8s' })
  t.teardown(() => app.close())
  t.equal(err?.code, 'FRS_REDIS_UNREACHABLE')
  t.match(err?.message, /^Redis connection "default" at frs-no-such-host\.invalid:6390 cannot be resolved: no such host \(ENOTFOUND\)$/)
  t.ok(elapsed < 2500, `failed after ${elapsed}ms, not after connectTimeout (8s)`)
})

t.test("connectTimeout must be shorter than Fastify's pluginTimeout", { skip: clusterMode }, async (t) => {
  const started = Date.now()
  const refused = await startup({ ...redis.connection, connectTimeout: '15s' })
  t.teardown(() => refused.app.close())
  t.match(refused.err, { code: 'FRS_INVALID_OPTION', message: /"redis\.connectTimeout": 15000ms is not shorter than Fastify's pluginTimeout \(10000ms\)/ })
  t.ok(Date.now() - started < 1000, 'refused at once, not after AVV_ERR_PLUGIN_EXEC_TIMEOUT')

  const raised = await startup({ ...redis.connection, connectTimeout: '15s' }, { pluginTimeout: 20_000 })
  t.teardown(() => raised.app.close())
  t.equal(raised.err, null, 'a raised pluginTimeout makes room for it')
  const unlimited = await startup({ ...redis.connection, connectTimeout: '15s' }, { pluginTimeout: 0 })
  t.teardown(() => unlimited.app.close())
  t.equal(unlimited.err, null, 'pluginTimeout: 0 has no limit')
})

// A real server whose INFO reply is rewritten to report another version: the check reads what
// the client answers, as it would from an old server.
async function clientReporting (version: string): Promise<Redis> {
  const client = rawClient(redis) as Redis
  await client.ping()
  const info = client.info.bind(client) as (...args: unknown[]) => Promise<string>
  client.info = (async (...args: unknown[]) => (await info(...args)).replace(/^redis_version:.*$/m, `redis_version:${version}`)) as typeof client.info
  return client
}

t.test('a server older than Redis 6.2 is refused at startup', { skip: clusterMode }, async (t) => {
  const old = await clientReporting('6.0.16')
  t.teardown(() => old.disconnect())
  const { app, err } = await startup({ client: old })
  t.teardown(() => app.close())
  t.equal(err?.code, 'FRS_REDIS_VERSION')
  t.match(err?.message, /^Redis connection "default" at (127\.0\.0\.1:\d+|memory:\/\/\w+) runs Redis 6\.0\.16; fastify-redis-suite needs Redis >= 6\.2/)

  const ok = await clientReporting('6.2.0')
  t.teardown(() => ok.disconnect())
  const fine = await startup({ client: ok })
  t.teardown(() => fine.app.close())
  t.equal(fine.err, null, '6.2.0 is enough')
})

t.test('values from the environment: an undefined named connection is refused, an undefined url falls back to REDIS_URL', { skip: clusterMode }, async (t) => {
  const missing = await startup({ ...redis.connection, connections: { sessions: process.env.FRS_TEST_UNSET_VARIABLE } })
  t.teardown(() => missing.app.close())
  t.match(missing.err, { code: 'FRS_INVALID_OPTION', message: /"redis\.connections\.sessions": it is undefined \(an unset environment variable\?\)/ })
  const noUrl = await startup({ ...redis.connection, connections: { sessions: { url: undefined } } })
  t.teardown(() => noUrl.app.close())
  t.match(noUrl.err, { code: 'FRS_INVALID_OPTION', message: /"redis\.connections\.sessions": give one of url/ })

  const saved = process.env.REDIS_URL
  process.env.REDIS_URL = redis.connection.url
  t.teardown(() => { if (saved === undefined) delete process.env.REDIS_URL; else process.env.REDIS_URL = saved })
  const fallback = await startup({ url: undefined })
  t.teardown(() => fallback.app.close())
  t.equal(fallback.err, null)
  t.equal((fallback.app.redis as Redis).options.port, Number(new URL(redis.connection.url as string).port))
})
