// Clients are known by behaviour, not by `instanceof` of this package's ioredis: a client of
// another copy (or of iovalkey, tested from the tarball in consumer.test.ts) is adopted, and
// objects that cannot serve are refused at startup with a message that says what is needed.
import t from 'tap'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import redisPlugin from '../plugins/redis.js'
import { isCluster, unusableClient } from '../lib/core/client.js'
import { clusterMode, needsRedis, rawClient, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

async function register (client: unknown) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisPlugin, { client: client as Redis })
  await app.ready()
  return app
}

t.test('refuses what is not an ioredis-like client, naming the option and what it needs', async (t) => {
  for (const bad of [{}, { defineCommand: () => {} }, 'redis://x', 42, null]) {
    await t.rejects(register(bad), { code: 'FRS_INVALID_OPTION', message: /"redis\.client".*ioredis Redis or Cluster instance/ }, JSON.stringify(bad))
  }
  const client = rawClient(redis)
  t.teardown(() => client.disconnect())
  const noFlag = Object.create(client, { isCluster: { value: undefined } }) as unknown
  t.match(unusableClient(noFlag), /no isCluster flag/)
})

t.test('refuses a client that maps RESP3 replies to objects and numbers', { skip: clusterMode ? 'a standalone client is enough to show the check' : needsRedis('an ioredis client of the server') }, async (t) => {
  const resp3 = new Redis(redis.connection.url as string, { lazyConnect: true, protocol: 3, replyMapping: 'resp3' })
  t.teardown(() => resp3.disconnect())
  await t.rejects(register(resp3), { code: 'FRS_INVALID_OPTION', message: /replyMapping: 'resp3'/ })
})

t.test('accepts a client whose class is not ours, by what it does', async (t) => {
  const client = rawClient(redis)
  t.teardown(() => client.disconnect())
  // Another copy of ioredis has other classes: the object is the same in every other respect.
  const foreign = new Proxy(client, { getPrototypeOf: () => Object.prototype })
  t.notOk(foreign instanceof Redis || foreign instanceof Cluster, 'not an instance of our copy')
  t.equal(unusableClient(foreign), undefined)
  t.equal(isCluster(foreign), clusterMode)
})
