// The memory engine (memory://) against a real Redis: randomised command sequences get the
// same replies and the same errors from both; its connection rules (production refusal, no
// ioredis options); and the example falling back to it when no redis-server can be had.
import t from 'tap'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import type { Cluster } from 'ioredis'
import { redis as redisPlugin } from '../plugins/index.js'
import { MemoryRedis } from '../lib/memory/index.js'
import { bootExample } from './fixtures/example.js'
import { draws, fuzzSeed } from './fixtures/prng.js'
import { freshPrefix, memoryMode, rawClient, testRedis } from './fixtures/redis.js'

type Step = [string, ...Array<string | number>]

/** One random command over a handful of keys of each type, wrong types and bad arguments included. */
function randomStep (pick: <T>(items: readonly T[]) => T, int: (max: number) => number, p: string): Step {
  const key = pick([`${p}:s1`, `${p}:s2`, `${p}:h`, `${p}:z`, `${p}:n`, `${p}:absent`])
  const value = pick(['v', '', '12', '-3', 'x'.repeat(int(300)), 'é€\u0000bin', '9223372036854775807', '1.5'])
  const steps: Array<() => Step> = [
    () => ['set', key, value],
    () => ['set', key, value, 'PX', 1 + int(100_000)],
    () => ['set', key, value, pick(['NX', 'XX'])],
    () => ['set', key, value, 'PX', 50_000, pick(['NX', 'XX', 'GET', 'KEEPTTL'])],
    () => ['set', key, value, 'PX', pick([0, -1, 'abc'])],
    () => ['get', key],
    () => ['getdel', key],
    () => ['mget', key, `${p}:s1`, `${p}:absent`],
    () => ['del', key, `${p}:s2`],
    () => ['unlink', key],
    () => ['exists', key, key, `${p}:absent`],
    () => ['incr', key],
    () => ['decr', key],
    () => ['incrby', key, pick([5, -7, 'x', '1.5'])],
    () => ['decrby', key, 3],
    () => ['pexpire', key, pick([100_000, 0, -5, 'x'])],
    () => ['expire', key, 100, pick(['NX', 'XX', 'GT', 'LT'])],
    () => ['persist', key],
    () => ['type', key],
    () => ['hset', key, pick(['a', 'b']), value, 'c', '1'],
    () => ['hget', key, pick(['a', 'b', 'c', 'zz'])],
    () => ['hmget', key, 'a', 'b', 'zz'],
    () => ['hincrby', key, pick(['a', 'c', 'n']), pick([1, -2, 'x'])],
    () => ['hdel', key, 'a', 'zz'],
    () => ['zadd', key, int(10), pick(['m1', 'm2', 'm3'])],
    () => ['zadd', key, pick(['NX', 'XX', 'GT', 'LT', 'CH']), int(10) - 5, pick(['m1', 'm2', 'm4'])],
    () => ['zadd', key, 'notascore', 'm1'],
    () => ['zrange', key, int(4) - 2, int(4) - 2],
    () => ['zrange', key, 0, -1, 'WITHSCORES'],
    () => ['zremrangebyscore', key, pick(['-inf', '(2', '3']), pick(['+inf', '5', '(7'])],
    () => ['zremrangebyrank', key, 0, int(3) - 1],
    () => ['zcard', key],
    () => ['zscore', key, pick(['m1', 'm2'])],
    () => ['zrem', key, 'm1', 'zz']
  ]
  return pick(steps)()
}

/** Replies made comparable: errors by their first word (the error code) and TTLs rounded. */
function comparable (step: Step, result: unknown): unknown {
  if (result instanceof Error) return `error ${result.message.split(' ')[0] as string}`
  if (Buffer.isBuffer(result)) return result.toString('hex')
  if (Array.isArray(result)) return result.map((r) => comparable(step, r))
  return result
}

t.test('randomised command sequences: the memory engine answers as Redis does, errors included', { skip: memoryMode ? 'compares against a real Redis server' : false }, async (t) => {
  const redis = await testRedis()
  const real = rawClient(redis)
  const memory = new MemoryRedis(freshPrefix()) as unknown as Redis
  t.teardown(() => { real.disconnect(); memory.disconnect() })
  const seed = fuzzSeed()
  const { pick, int } = draws(seed)
  t.comment(`FUZZ_SEED=${seed}`)
  const prefix = `{${freshPrefix()}}`
  let compared = 0
  for (let i = 0; i < 1500; i++) {
    const step = randomStep(pick, int, prefix)
    const [name, ...args] = step
    const [a, b] = await Promise.all([
      (real as Redis).callBuffer(name, ...args).catch((err: unknown) => err),
      memory.callBuffer(name, ...args).catch((err: unknown) => err)
    ])
    const same = JSON.stringify(comparable(step, a)) === JSON.stringify(comparable(step, b))
    if (!same) {
      t.fail(`step ${i} ${JSON.stringify(step)}: Redis ${JSON.stringify(comparable(step, a))}, memory ${JSON.stringify(comparable(step, b))}`)
      break
    }
    compared++
    if (i % 50 === 0) {
      // TTLs agree to the second (both count down from the same commands).
      for (const key of ['s1', 's2', 'h', 'z', 'n'].map((k) => `${prefix}:${k}`)) {
        const [ra, rb] = await Promise.all([(real as Redis).pttl(key), memory.pttl(key)])
        if (Math.sign(ra) !== Math.sign(rb) || Math.abs(ra - rb) > 1000) t.fail(`PTTL ${key}: Redis ${ra}, memory ${rb}`)
      }
    }
  }
  t.equal(compared, 1500, 'every reply and error matched')
})

t.test("scripts get Redis's conversions: numbers, nil, tables, status and error replies, binary strings", async (t) => {
  const memory = new MemoryRedis(freshPrefix()) as unknown as Redis
  t.teardown(() => memory.disconnect())
  const lua = `
local t = redis.call('TIME')
redis.call('SET', KEYS[1], ARGV[1])
local n = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return { 7.9, false, n > 1e12 and 1 or 0, redis.call('GET', KEYS[1]), #ARGV[1], redis.status_reply('FINE'), redis.pcall('INCR', KEYS[1]), 'after' }`
  memory.defineCommand('probe', { numberOfKeys: 1, lua })
  const bin = Buffer.from([0, 255, 128, 10, 13, 0xc3])
  const r = await (memory as unknown as { probeBuffer: (k: string, v: Buffer) => Promise<unknown[]> }).probeBuffer('k', bin)
  t.equal(r[0], 7, 'a number is truncated to an integer')
  t.equal(r[1], null, 'false is a nil reply')
  t.equal(r[2], 1, 'TIME in milliseconds is a 64-bit integer, not wrapped')
  t.same(r[3], bin, 'binary strings cross unchanged')
  t.equal(r[4], bin.length, '# counts bytes')
  t.same(r[5], Buffer.from('FINE'), 'a status reply')
  t.match(String(r[6]), /not an integer/, 'redis.pcall returns the error')
  t.same(r[7], Buffer.from('after'))
  memory.defineCommand('holes', { numberOfKeys: 0, lua: 'return { 1, 2, nil, 4 }' })
  t.same(await (memory as unknown as { holes: () => Promise<unknown> }).holes(), [1, 2], 'a table stops at its first nil')
  memory.defineCommand('boom', { numberOfKeys: 0, lua: "return redis.call('INCRBY', 'x', 'notanumber')" })
  await t.rejects((memory as unknown as { boom: () => Promise<unknown> }).boom(), /not an integer or out of range/, 'redis.call raises the command error')
  memory.defineCommand('bad', { numberOfKeys: 0, lua: 'return (' })
  await t.rejects((memory as unknown as { bad: () => Promise<unknown> }).bad(), /Error compiling script/, 'a syntax error is an error reply')
  t.same(await memory.call('eval', 'return ARGV[1] .. KEYS[1]', 1, 'k', 'v'), 'vk', 'EVAL')
  await t.rejects(memory.call('evalsha', 'f'.repeat(40), 0), /NOSCRIPT/, 'EVALSHA of an unknown script says NOSCRIPT')
})

t.test('keys do not expire while a script runs, as in Redis: GET sees the key, PTTL counts down to 0', async (t) => {
  const memory = new MemoryRedis(freshPrefix()) as unknown as Redis
  t.teardown(() => memory.disconnect())
  // The script spins until its clock passes the key's expiry, then reads it: Redis judges expiry
  // by the script's start, so GET still sees the key, and PTTL (counted by the clock) says 0.
  const spin = {
    numberOfKeys: 1,
    lua: `
redis.call('SET', KEYS[1], 'v', 'PX', 5)
local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) > start + 20000
return { redis.call('GET', KEYS[1]) or 'gone', redis.call('PTTL', KEYS[1]) }`
  }
  memory.defineCommand('spin', spin)
  const run = (c: Redis | Cluster, key: string): Promise<[string, number]> => (c as unknown as { spin: (k: string) => Promise<[string, number]> }).spin(key)
  const key = `{${freshPrefix()}}k`
  const got = await run(memory, key)
  t.same(got, ['v', 0], 'the key read 20 ms later is still there inside the script, with PTTL 0')
  if (!memoryMode) {
    const real = rawClient(await testRedis())
    t.teardown(() => real.disconnect())
    real.defineCommand('spin', spin)
    t.same(await run(real, key), got, 'a real Redis answers the same')
  }
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(await memory.exists(key), 0, 'after the script it has expired')
})

t.test('pub/sub, MONITOR, pipelines and closing', async (t) => {
  const name = freshPrefix()
  const a = new MemoryRedis(name) as unknown as Redis
  const sub = a.duplicate()
  t.teardown(() => { a.disconnect(); sub.disconnect() })
  await sub.subscribe('ch')
  const got: string[] = []
  sub.on('message', (channel: string, message: string) => got.push(`${channel}:${message}`))
  t.equal(await a.call('publish', 'ch', 'one'), 1, 'PUBLISH counts the subscriber')
  const results = await a.pipeline().set('p', '1').incr('p').get('p').incr('nope-not-a-number-key').exec()
  t.same(results, [[null, 'OK'], [null, 2], [null, '2'], [null, 1]], 'a pipeline answers [error, result] pairs')
  await a.hset('h', 'f1', 'v1', 'f2', 'v2')
  t.same(await a.hgetall('h'), { f1: 'v1', f2: 'v2' }, 'HGETALL answers an object, as ioredis does')
  const failed = await a.pipeline().set('w', 'x').incr('w').exec()
  t.match(String(failed?.[1]?.[0]), /not an integer/, "one command's error does not stop the others")
  await new Promise((resolve) => setImmediate(resolve))
  t.same(got, ['ch:one'], 'the subscriber got the message')
  await a.quit()
  t.equal(a.status, 'end')
  await t.rejects(a.call('get', 'p'), /Connection is closed/, 'a closed client refuses commands')
  const b = new MemoryRedis(name) as unknown as Redis
  t.teardown(() => b.disconnect())
  t.equal(await b.call('get', 'p'), '2', 'the keyspace outlives a client: another client of the same name sees it')
})

t.test('memory:// connection rules', async (t) => {
  const saved = process.env.NODE_ENV
  t.teardown(() => { process.env.NODE_ENV = saved })
  process.env.NODE_ENV = 'production'
  const refused = Fastify()
  await t.rejects(async () => { await refused.register(redisPlugin, { url: 'memory://' }).ready() }, { code: 'FRS_INVALID_OPTION', message: /redis\.url.*NODE_ENV is "production".*allowMemoryInProduction/ }, 'refused in production')
  await refused.close()
  const allowed = Fastify()
  await allowed.register(redisPlugin, { url: 'memory://', allowMemoryInProduction: true }).ready()
  t.equal(await allowed.redis.set('k', 'v'), 'OK', 'runs in production when the user says they mean it')
  await allowed.close()
  process.env.NODE_ENV = 'test'
  for (const [opts, path] of [
    [{ url: 'redis://127.0.0.1:6379', allowMemoryInProduction: true }, 'redis.allowMemoryInProduction'],
    [{ url: 'memory://', options: { db: 1 } }, 'redis.options'],
    [{ url: 'memory://', allowMemoryInProduction: 'yes' }, 'redis.allowMemoryInProduction'],
    [{ url: 'mem://x' }, 'redis.url']
  ] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(redisPlugin, opts as never).ready() }, { code: 'FRS_INVALID_OPTION', message: new RegExp(path.replace('.', '\\.')) }, `${JSON.stringify(opts)} is refused naming ${path}`)
    await app.close()
  }
})

t.test('memory:// names: a stray % is part of the name, not a startup crash', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisPlugin, { url: 'memory://odd%E0name' }).ready()
  t.equal(await app.redis.set('k', 'v'), 'OK')
  t.match((await app.redisHealth()).connections.default, { ok: true, mode: 'memory' })
})

t.test('the example runs on the memory engine when there is neither REDIS_URL nor redis-server, and says so', async (t) => {
  // A PATH with node and nothing else: no redis-server to find.
  const bin = mkdtempSync(join(tmpdir(), 'frs-path-'))
  symlinkSync(process.execPath, join(bin, 'node'))
  const app = await bootExample({ REDIS_URL: undefined, PATH: bin })
  t.teardown(() => app.stop())
  t.match(app.stderr.join(''), /running on the in-process memory engine \(memory:\/\/\)/, 'it says so at startup')
  const health = await fetch(`${app.origin}/health/redis`)
  t.equal(health.status, 200, 'the health route answers')
  t.match(await health.json(), { ok: true }, 'and reports the engine healthy')
  const first = await fetch(`${app.origin}/api/listings`)
  const second = await fetch(`${app.origin}/api/listings`)
  t.equal(first.status, 200)
  t.same(await second.json(), await first.json(), 'the listings answer the same twice')
  t.equal(second.headers.get('x-cache'), 'HIT', 'the second listing comes from the response cache')
  t.ok(first.headers.get('ratelimit'), 'rate-limit headers are sent')
})
