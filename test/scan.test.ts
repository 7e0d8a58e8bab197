import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { deleteByPattern, masterNodes, scanPattern } from '../lib/core/scan.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, clusterMode, freshPrefix, memoryMode, rawClient, scanKeys, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

/** A client that pipelines on its own (also across the slots of a Cluster), to write many keys fast. */
function pipeliningClient (): Redis | Cluster {
  const c = redis.connection
  if (c.cluster) return new Cluster(c.cluster, { enableAutoPipelining: true })
  if (memoryMode) return rawClient(redis)
  return new Redis(c.url as string, { enableAutoPipelining: true })
}

async function fill (client: Redis | Cluster, keys: string[]): Promise<void> {
  await Promise.all(keys.map((key) => client.set(key, '1', 'PX', 120_000)))
}

t.test('deletes 10,000 keys on every master; foreign keys survive', async (t) => {
  const prefix = freshPrefix()
  const app = await buildApp(t, { prefix })
  const writer = pipeliningClient()
  t.teardown(() => writer.disconnect())
  const ks = app.redisSuite.keyspace('cache', 'feed')
  const mine = Array.from({ length: 10_000 }, (_, i) => ks.key('post', i))
  const foreignPrefix = freshPrefix()
  const foreign = [
    // another prefix, same feature and namespace
    ...Array.from({ length: 300 }, (_, i) => `${foreignPrefix}:cache:feed:v1:post:${i}`),
    // our prefix: a namespace that starts the same, another version, another feature
    ...Array.from({ length: 100 }, (_, i) => app.redisSuite.keyspace('cache', 'feed2').key('post', i)),
    ...Array.from({ length: 100 }, (_, i) => ks.with({ version: 2 }).key('post', i)),
    ...Array.from({ length: 100 }, (_, i) => app.redisSuite.keyspace('session').key('post', i))
  ]
  let started = Date.now()
  await fill(writer, [...mine, ...foreign])
  t.comment(`wrote ${mine.length + foreign.length} keys in ${Date.now() - started}ms`)
  if (clusterMode) {
    const perMaster = await Promise.all(masterNodes(app.redis).map(async (node) => {
      let n = 0
      for await (const page of scanPattern(node, ks.pattern())) n += page.keys.length
      return n
    }))
    t.equal(perMaster.length, 3)
    t.ok(perMaster.every((n) => n > 1000), `the keys are spread over every master: ${perMaster.join(', ')}`)
  }

  started = Date.now()
  const deleted = await deleteByPattern(app.redis, ks.pattern())
  const elapsed = Date.now() - started
  t.equal(deleted, 10_000, `deleted every key of the namespace in ${elapsed}ms`)
  t.same(await scanKeys(app.redis, `${prefix}:cache:feed:`), [], 'none of them is left')
  t.same(await scanKeys(app.redis, foreignPrefix), [...foreign.slice(0, 300)].sort(), 'another prefix is untouched')
  t.same(await scanKeys(app.redis, prefix), foreign.slice(300).sort(), 'our other namespaces, versions and features are untouched')
  t.equal(await deleteByPattern(app.redis, ks.pattern()), 0, 'a second run finds nothing')
  await assertKeysHaveTtl(t, app.redis, prefix)
  await deleteByPattern(app.redis, `${foreignPrefix}:*`)
})

t.test('glob characters from user input match only literally', async (t) => {
  const app = await buildApp(t)
  const ks = app.redisSuite.keyspace('cache', 'glob')
  const names = ['a?c', 'abc', 'axc', 'a[b]c', 'ab]c', 'a\\c', 'ac', 'a[x', 'a*c']
  const keyOf = (name: string): string => ks.key(name)
  await fill(app.redis, names.map(keyOf))
  const left = async (): Promise<string[]> => (await scanKeys(app.redis, app.redisSuite.prefix)).sort()
  const expectLeft = (gone: string[]): string[] => names.filter((n) => !gone.includes(n)).map(keyOf).sort()

  // The same globs unescaped would widen: check that they really would, so the test can fail.
  const rawMatches = async (glob: string): Promise<number> => {
    let n = 0
    for await (const page of scanPattern(app.redis, ks.base + glob)) n += page.keys.length
    return n
  }
  t.equal(await rawMatches('a?c'), 2, 'raw `a?c` would match abc and axc')
  t.equal(await rawMatches('a[bx]c'), 2, 'raw `a[bx]c` would match abc and axc')

  t.equal(await deleteByPattern(app.redis, ks.pattern('a?c')), 1, '`?` matches only a "?"')
  t.same(await left(), expectLeft(['a?c']))
  t.equal(await deleteByPattern(app.redis, ks.pattern('a[b]c')), 1, '`[b]` is not a character class')
  t.same(await left(), expectLeft(['a?c', 'a[b]c']))
  t.equal(await deleteByPattern(app.redis, ks.pattern('a\\c')), 1, '`\\` is not an escape: "ac" survives')
  t.same(await left(), expectLeft(['a?c', 'a[b]c', 'a\\c']))
  t.equal(await deleteByPattern(app.redis, ks.pattern('a[*')), 1, 'an open `[` stays literal; `*` is the wildcard')
  t.same(await left(), expectLeft(['a?c', 'a[b]c', 'a\\c', 'a[x']))
  t.equal(await deleteByPattern(app.redis, ks.pattern('ab*')), 2, '`*` matches any run: abc and ab]c')
  t.same(await left(), expectLeft(['a?c', 'a[b]c', 'a\\c', 'a[x', 'abc', 'ab]c']))
  t.equal(await deleteByPattern(app.redis, ks.pattern('*')), 3, 'the rest')
  t.same(await left(), [])
})

t.test('small batches and SCAN pages: every key once', async (t) => {
  const app = await buildApp(t)
  const ks = app.redisSuite.keyspace('cache', 'batch')
  const keys = Array.from({ length: 1234 }, (_, i) => ks.key('k', i))
  await fill(app.redis, keys)
  const seen = new Set<string>()
  let pages = 0
  for await (const page of scanPattern(app.redis, ks.pattern(), { count: 100 })) {
    pages++
    for (const key of page.keys) seen.add(key)
  }
  t.equal(seen.size, 1234, 'scanPattern yields every key')
  t.ok(pages > 3, `in ${pages} pages`)
  t.equal(await deleteByPattern(app.redis, ks.pattern(), { count: 100, batch: 7 }), 1234)
  t.same(await scanKeys(app.redis, app.redisSuite.prefix), [])
})

t.test('refuses patterns that could reach beyond one prefix, and bad counts', async (t) => {
  const app = await buildApp(t)
  for (const pattern of ['*', '', 'frs*', '*:cache:*', 'fr?:x', '[f]rs:*', ':x*']) {
    await t.rejects(deleteByPattern(app.redis, pattern), { code: 'FRS_INVALID_OPTION', message: /"pattern"/ }, JSON.stringify(pattern))
  }
  const ks = app.redisSuite.keyspace('cache')
  await t.rejects(deleteByPattern(app.redis, ks.pattern(), { count: 10 }), { code: 'FRS_INVALID_OPTION', message: /"count".*>= 100/ })
  await t.rejects(deleteByPattern(app.redis, ks.pattern(), { batch: 0 }), { code: 'FRS_INVALID_OPTION', message: /"batch"/ })
})
