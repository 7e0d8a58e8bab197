import t from 'tap'
import { createHash } from 'node:crypto'
import { Cluster } from 'ioredis'
import { buildApp } from './fixtures/app.js'
import { freshPrefix, rawClient, testRedis } from './fixtures/redis.js'
import { cacheScripts } from '../lib/cache/scripts.js'
import { lockScripts } from '../lib/cache/lock-scripts.js'
import { coreScripts, defineScripts } from '../lib/core/scripts.js'
import { otpScripts } from '../lib/otp/scripts.js'
import { limiterScripts } from '../lib/rate-limit/scripts.js'
import { sessionScripts } from '../lib/session/scripts.js'

const scripts = [...coreScripts, ...cacheScripts, ...lockScripts, ...limiterScripts, ...sessionScripts, ...otpScripts]

const redis = await testRedis()

t.test('every script has a unique frs name and a key count', async (t) => {
  const names = new Set<string>()
  for (const s of scripts) {
    t.match(s.name, /^frs[A-Z]/, s.name)
    t.notOk(names.has(s.name), `${s.name} defined once`)
    names.add(s.name)
    t.ok(s.numberOfKeys === undefined || (Number.isInteger(s.numberOfKeys) && s.numberOfKeys >= 0), `${s.name} has a key count, or takes it first`)
  }
})

t.test('scripts run on the managed client, and again after SCRIPT FLUSH', async (t) => {
  const app = await buildApp(t)
  const key = `${freshPrefix()}:lock`
  await app.redis.set(key, 'token-a', 'PX', 10_000)
  t.equal(await app.redis.frsCompareDel(key, 'token-b'), 0, 'wrong token keeps the key')
  t.equal(await app.redis.frsComparePexpire(key, 'token-a', 20_000), 1)

  const nodes = app.redis instanceof Cluster ? app.redis.nodes('master') : [app.redis]
  await Promise.all(nodes.map((n) => n.script('FLUSH')))
  const loaded = await Promise.all(nodes.map((n) => n.script('EXISTS', createSha(scripts[0]?.lua ?? ''))))
  t.same(loaded.flat(), nodes.map(() => 0), 'the script cache is really empty')

  t.equal(await app.redis.frsCompareDel(key, 'token-a'), 1, 'NOSCRIPT fell back to EVAL')
  t.equal(await app.redis.exists(key), 0)
  const now = await app.redis.frsTime()
  t.ok(Math.abs(now - Date.now()) < 5000, 'frsTime is the server clock in ms')
})

t.test('defineScripts defines each script once per client', async (t) => {
  const client = rawClient(redis)
  t.teardown(() => client.disconnect())
  const calls: string[] = []
  const define = client.defineCommand.bind(client)
  client.defineCommand = (name, definition) => { calls.push(name); define(name, definition) }
  defineScripts(client, coreScripts)
  defineScripts(client, coreScripts)
  t.same(calls, coreScripts.map((s) => s.name), 'each defined once')
  t.type((client as unknown as Record<string, unknown>).frsTime, 'function')
  t.type(await client.frsTime(), 'number')
})

function createSha (lua: string): string {
  // ioredis sends the script's SHA1; compute the same to ask SCRIPT EXISTS.
  return createHash('sha1').update(lua).digest('hex')
}
