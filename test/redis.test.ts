import t from 'tap'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import redisPlugin from '../plugins/redis.js'
import { flushWrites } from '../lib/core/coalesce.js'
import { buildApp } from './fixtures/app.js'
import { clusterMode, freshPrefix, memoryMode, needsRedis, rawClient, testRedis } from './fixtures/redis.js'
import { MemoryRedis } from '../lib/memory/index.js'
import { freePort, startRedisServer, startSentinel } from './fixtures/redis-server.js'

const redis = await testRedis()

t.test('connects from the test connection and decorates fastify.redis', async (t) => {
  const app = await buildApp(t)
  t.ok(clusterMode ? app.redis instanceof Cluster : memoryMode ? app.redis instanceof MemoryRedis : app.redis instanceof Redis, 'a plain client')
  t.equal(await app.redis.ping(), 'PONG')
  t.equal(app.redisConnection(), app.redis, 'no name gives the default connection')
  t.equal(app.redisConnection('default'), app.redis)
  t.equal(app.redis.status, 'ready')
})

// Socket writes of every node the client uses, counted while `fn` runs.
async function socketWrites (client: Redis | Cluster, fn: () => Promise<void>): Promise<number> {
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client]
  let writes = 0
  const restore: Array<() => void> = []
  for (const node of nodes) {
    const stream = node.stream as unknown as { _write: (...a: unknown[]) => void, _writev?: (...a: unknown[]) => void } | undefined
    if (stream === undefined) continue // a Cluster node not connected yet
    for (const method of ['_write', '_writev'] as const) {
      const original = stream[method]
      if (original === undefined) continue
      stream[method] = function (this: unknown, ...args: unknown[]) { writes++; return original.apply(this, args) }
      restore.push(() => { stream[method] = original })
    }
  }
  try { await fn() } finally { for (const r of restore) r() }
  return writes
}

t.test('coalesceWrites: the commands of one event-loop turn leave in one socket write', { skip: needsRedis('it counts socket writes') }, async (t) => {
  const burst = async (app: Awaited<ReturnType<typeof buildApp>>) => {
    const keys = Array.from({ length: 50 }, (_, i) => app.redisSuite.keyspace('t').taggedKey(['same-slot'], i))
    await Promise.all(keys.map((k, i) => app.redis.set(k, `v${i}`, 'PX', 60_000)))
    let values: Array<string | null> = []
    const writes = await socketWrites(app.redis, async () => { values = await Promise.all(keys.map((k) => app.redis.get(k))) })
    t.same(values, keys.map((_, i) => `v${i}`), 'every reply goes to its own command')
    return writes
  }
  const on = await burst(await buildApp(t))
  t.equal(on, 1, '50 GETs in one write')
  const off = await burst(await buildApp(t, { coalesceWrites: false }))
  t.ok(off >= 10, `without it, ${off} writes`)
  const app = await buildApp(t)
  await app.redis.ping() // on a Cluster, one node is connected now
  const node = app.redis instanceof Cluster ? app.redis.nodes('master').find((n) => n.status === 'ready') as Redis : app.redis
  await new Promise((resolve) => setImmediate(resolve)) // the ping's turn has ended
  const pending = node.ping()
  t.equal(node.stream.writableCorked, 1, 'held until the turn ends')
  flushWrites(app.redis)
  t.equal(node.stream.writableCorked, 0, 'flushWrites sends it now')
  t.equal(await pending, 'PONG')
  const late = await buildApp(t)
  if (!(late.redis instanceof Cluster)) {
    late.redis.disconnect(true) // a new socket after a reconnect is corked per turn too
    await new Promise((resolve) => late.redis.once('ready', resolve))
    t.equal(await burst(late), 1, 'after a reconnect')
  }
})

t.test('applies the safe request-path defaults, and lets options override them', { skip: clusterMode || needsRedis('ioredis socket options') }, async (t) => {
  const app = await buildApp(t, { commandTimeout: '250ms' })
  const opts = (app.redis as Redis).options
  t.equal(opts.commandTimeout, 250)
  t.equal(opts.enableOfflineQueue, false, 'no unbounded offline queue')
  t.equal(opts.maxRetriesPerRequest, 1)
  t.type(opts.retryStrategy, 'function')
  const delays = [1, 2, 5, 50].map((n) => opts.retryStrategy?.(n) as number)
  t.ok(delays.every((d) => d > 0 && d <= 2100), `bounded backoff ${delays.join(',')}`)

  const app2 = await buildApp(t, { options: { enableOfflineQueue: true, commandTimeout: 99 } })
  t.equal((app2.redis as Redis).options.enableOfflineQueue, true)
  t.equal((app2.redis as Redis).options.commandTimeout, 99)
})

t.test('a command against a stalled server fails after commandTimeout instead of hanging', { skip: clusterMode || needsRedis('it pauses the server with CLIENT PAUSE') }, async (t) => {
  const app = await buildApp(t, { commandTimeout: 200 })
  const started = Date.now()
  // DEBUG SLEEP is refused on some builds; CLIENT PAUSE stalls every client the same way.
  const admin = rawClient(redis) as Redis
  t.teardown(() => admin.quit())
  await admin.client('PAUSE', 1500, 'ALL')
  await t.rejects(app.redis.get('x'), /timed out/i)
  const elapsed = Date.now() - started
  t.ok(elapsed < 1400, `gave up after ${elapsed}ms`)
  await admin.client('UNPAUSE')
})

t.test('named connections, typed accessor, unknown name', { skip: clusterMode }, async (t) => {
  const other = await startRedisServer()
  t.teardown(() => other.stop())
  const app = await buildApp(t, { connections: { sessions: other.url + '/2', limits: { url: other.url, options: { db: 3 } } } })
  const sessions = app.redisConnection('sessions') as Redis
  t.not(sessions, app.redis)
  t.equal(sessions.options.db, 2)
  t.equal((app.redisConnection('limits') as Redis).options.db, 3)
  await sessions.set('k', 'v', 'PX', 10000)
  t.equal(await (app.redisConnection('limits') as Redis).get('k'), null, 'db 3 does not see db 2')
  t.same(app.redisSuite.connectionNames, ['default', 'sessions', 'limits'])
  t.throws(() => app.redisConnection('nope'), { code: 'FRS_UNKNOWN_CONNECTION', message: /"nope".*default, sessions, limits/ })
})

t.test('refuses a second registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
  app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix() })
  await t.rejects(async () => { await app.ready() }, { code: 'FRS_ALREADY_REGISTERED' })
})

t.test('bad options fail at startup, naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ url: 'http://localhost' }, /url".*redis:\/\//],
    [{ url: 'redis://a', cluster: [{ port: 1 }] }, /only one of url, cluster/],
    [{ cluster: [] }, /"redis.cluster"/],
    [{ sentinel: { sentinels: [], name: 'x' } }, /sentinel.sentinels/],
    [{ sentinel: { sentinels: [{ port: 1 }] } }, /sentinel.name/],
    [{ client: {} }, /"redis.client"/],
    [{ url: 'redis://127.0.0.1:1', connectTimeout: 'soon' }, /connectTimeout/],
    [{ url: 'redis://127.0.0.1:1', commandTimeout: 0 }, /commandTimeout/],
    [{ url: 'redis://127.0.0.1:1', connections: { 'bad name': 'redis://x' } }, /connections.bad name/],
    [{ url: 'redis://127.0.0.1:1', connections: { default: 'redis://x' } }, /not "default"/],
    [{ url: 'redis://127.0.0.1:1', connections: { s: 'mysql://x' } }, /connections.s.url/],
    [{ url: 'redis://127.0.0.1:1', prefix: 'a:b' }, /"prefix"/],
    [{ url: 'redis://127.0.0.1:1', healthRoute: 'health' }, /healthRoute/],
    [{ url: 'redis://127.0.0.1:1', coalesceWrites: 'yes' }, /coalesceWrites/],
    [{ url: 'redis://u:secretpw@127.0.0.1:1', clusterOptions: {} }, /clusterOptions/]
  ]
  for (const [opts, message] of cases) {
    const app = Fastify()
    app.register(redisPlugin, opts)
    await t.rejects(async () => { await app.ready() }, { code: /FRS_INVALID_(OPTION|DURATION)/, message }, JSON.stringify(opts))
    await app.close()
  }
})

t.test('an unreachable Redis fails startup within connectTimeout, naming host and port', async (t) => {
  const port = await freePort()
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(redisPlugin, { url: `redis://user:hunter2@127.0.0.1:${port}`, connectTimeout: 300 })
  const started = Date.now()
  const err = await app.ready().then(() => null, (e: Error) => e) as (Error & { code?: string, cause?: unknown }) | null
  const elapsed = Date.now() - started
  t.equal(err?.code, 'FRS_REDIS_UNREACHABLE')
  t.match(err?.message, `127.0.0.1:${port}`)
  t.match(err?.message, /within 300ms/)
  t.notMatch(err?.message, /hunter2/, 'no password in the message')
  t.ok(err?.cause, 'the socket error is the cause')
  t.ok(elapsed >= 290 && elapsed < 1500, `failed after ${elapsed}ms`)
})

t.test('one unreachable named connection fails startup and closes the others', async (t) => {
  const port = await freePort()
  const app = Fastify()
  let created: Redis | Cluster | undefined
  app.register(redisPlugin, { ...redis.connection, prefix: freshPrefix(), connectTimeout: 300, connections: { dead: `redis://127.0.0.1:${port}` } })
  app.addHook('onRegister', () => {})
  await t.rejects(async () => { await app.ready() }, { code: 'FRS_REDIS_UNREACHABLE', message: /"dead"/ })
  t.equal(created, undefined)
  await app.close()
})

t.test('adopts a caller client and never closes it; closes owned clients', { skip: clusterMode }, async (t) => {
  const mine = rawClient(redis) as Redis
  t.teardown(() => mine.disconnect())
  const app = Fastify()
  await app.register(redisPlugin, { client: mine, prefix: freshPrefix(), connections: { own: redis.connection.url as string } })
  await app.ready()
  t.equal(app.redis, mine)
  const own = app.redisConnection('own')
  t.equal(await app.redis.frsTime().then((n) => typeof n), 'number', 'scripts registered on the adopted client')
  await app.close()
  t.equal(mine.status, 'ready', 'adopted client still open')
  t.equal(await mine.ping(), 'PONG')
  t.equal(own.status, 'end', 'owned client closed')
})

t.test('close falls back to disconnect when QUIT does not answer', { skip: clusterMode }, async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const app = Fastify()
  await app.register(redisPlugin, { url: server.url, closeTimeout: 200, prefix: freshPrefix(), options: { commandTimeout: 5000 } })
  await app.ready()
  const admin = new Redis(server.url)
  await admin.client('PAUSE', 3000, 'ALL')
  admin.disconnect()
  const started = Date.now()
  await app.close()
  const elapsed = Date.now() - started
  t.ok(elapsed < 1500, `closed in ${elapsed}ms`)
  t.equal(app.redis.status, 'end')
})

t.test('connects through Sentinel', { skip: clusterMode }, async (t) => {
  const master = await startRedisServer()
  const sentinel = await startSentinel(master, 'frsmaster')
  t.teardown(async () => { await sentinel.stop(); await master.stop() })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisPlugin, { sentinel: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'frsmaster' }, prefix: freshPrefix() })
  await app.ready()
  await app.redis.set('via-sentinel', '1', 'PX', 10000)
  const direct = new Redis(master.url)
  t.teardown(() => direct.disconnect())
  t.equal(await direct.get('via-sentinel'), '1', 'the write reached the master')
  const health = await app.redisHealth()
  t.equal(health.connections.default?.mode, 'sentinel')
  t.equal(health.connections.default?.nodes[0]?.role, 'master')
})

t.test('connects from ioredis options, and REDIS_URL when nothing is given', { skip: clusterMode }, async (t) => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const a = Fastify()
  t.teardown(() => a.close())
  await a.register(redisPlugin, { options: { host: '127.0.0.1', port: server.port, db: 1 }, prefix: freshPrefix() })
  await a.ready()
  t.equal((a.redis as Redis).options.db, 1)

  const saved = process.env.REDIS_URL
  process.env.REDIS_URL = server.url + '/4'
  t.teardown(() => { if (saved === undefined) delete process.env.REDIS_URL; else process.env.REDIS_URL = saved })
  const b = Fastify()
  t.teardown(() => b.close())
  await b.register(redisPlugin, { prefix: freshPrefix() })
  await b.ready()
  t.equal((b.redis as Redis).options.port, server.port)
  t.equal((b.redis as Redis).options.db, 4)
})

t.test('without REDIS_URL the default is redis://127.0.0.1:6379', async (t) => {
  const saved = process.env.REDIS_URL
  delete process.env.REDIS_URL
  t.teardown(() => { if (saved !== undefined) process.env.REDIS_URL = saved })
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(redisPlugin, { connectTimeout: 200 })
  // Either a local Redis answers on 6379, or startup fails naming that address.
  const err = await app.ready().then(() => null, (e: Error) => e)
  if (err) t.match(err.message, '127.0.0.1:6379')
  else t.equal(((app.redis as Redis).options.port), 6379)
})

t.test('health decorator and optional route', async (t) => {
  const off = await buildApp(t)
  t.equal((await off.inject('/health/redis')).statusCode, 404, 'no route by default')

  const app = await buildApp(t, { healthRoute: true })
  app.redisSuite.addHealthSection('demo', () => ({ hits: 1 }))
  const res = await app.inject('/health/redis')
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.ok, true)
  const def = body.connections.default
  t.equal(def.mode, redis.mode)
  t.equal(def.nodes.length, clusterMode ? 3 : 1)
  for (const node of def.nodes) {
    if (memoryMode) t.match(node.address, /^memory:\/\//, 'the memory engine names its keyspace')
    t.equal(node.role, 'master')
    t.match(node.version, /^\d+\.\d+/)
    t.ok(memoryMode ? node.usedMemory >= 0 : node.usedMemory > 0, 'used memory') // the memory engine counts its keys and values only
    t.type(node.keys, 'number')
    t.ok(node.latencyMs >= 0)
  }
  t.same(body.demo, { hits: 1 })
  t.throws(() => app.redisSuite.addHealthSection('demo', () => 1), /taken/)

  const custom = await buildApp(t, { healthRoute: '/status/redis' })
  t.equal((await custom.inject('/status/redis')).statusCode, 200)
})

t.test('health reports a broken connection with 503', { skip: !redis.controllable || clusterMode }, async (t) => {
  const server = await startRedisServer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisPlugin, { url: server.url, healthRoute: true, commandTimeout: 300, prefix: freshPrefix() })
  await app.ready()
  await server.stop()
  const res = await app.inject('/health/redis')
  t.equal(res.statusCode, 503)
  t.equal(res.json().ok, false)
  t.type(res.json().connections.default.error, 'string')
})
