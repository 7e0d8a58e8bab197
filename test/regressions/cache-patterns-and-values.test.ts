// deletePattern matches keys of any length, user input put in with keyGlob stays literal, and
// values round-trip exactly: each written by one app and read or deleted by another (two
// Fastify apps with their own connections on one Redis).
import t from 'tap'
import { buildApp } from '../fixtures/app.js'
import { cacheApp } from '../fixtures/cache.js'
import cachePlugin from '../../plugins/cache.js'
import { deleteByPattern, keyGlob } from '../../lib/index.js'

async function twoApps (t: Parameters<typeof cacheApp>[0]) {
  const { app: a } = await cacheApp(t)
  const b = await buildApp(t, { prefix: a.redisSuite.prefix }, async (app) => { await app.register(cachePlugin) })
  return { a, b }
}

t.test('deletePattern matches a key whatever its length', async (t) => {
  const { a, b } = await twoApps(t)
  const tail = 'x'.repeat(300)
  await a.cache.set(`q:42:${tail}`, 'long')
  await a.cache.set('q:42:short', 'short')
  await a.cache.set(`q:43:${tail}`, 'other')
  t.equal(await b.cache.deletePattern('q:42:*'), 2, 'the short and the 300-character key')
  t.equal(await a.cache.get(`q:42:${tail}`), undefined)
  t.equal(await a.cache.get(`q:43:${tail}`), 'other', 'a long key the glob does not match stays')
  t.equal(await b.cache.deletePattern(`*${tail.slice(0, 200)}`), 1, 'a glob longer than 128 characters matches too')
  t.equal(await a.cache.get(`q:43:${tail}`), undefined)
})

t.test('keyGlob keeps user input literal: a * in it matches only a *', async (t) => {
  const { a, b } = await twoApps(t)
  const feed = (app: typeof a) => app.cache.namespace('feed')
  for (const key of ['user:1', 'user:2:x', 'user:*', 'user:*:x', 'user:?', 'user:[a]']) await feed(a).set(key, key)
  for (const userInput of ['*', '?', '[a]']) {
    t.equal(await feed(b).deletePattern(keyGlob`user:${userInput}*`), userInput === '*' ? 2 : 1, `input ${userInput}: only keys that start with it literally`)
  }
  t.same(await feed(a).getMany(['user:1', 'user:2:x']), ['user:1', 'user:2:x'], 'the other keys stay')
  t.equal(await feed(b).deletePattern(keyGlob`user:${1}`), 1, 'numbers are literal too; no wildcard: one key')
  // The core function, with a Keyspace of the same namespace.
  await feed(a).set('user:*', 'again')
  const ks = b.redisSuite.keyspace('cache', 'feed')
  t.equal(await deleteByPattern(b.redis, ks.pattern(keyGlob`user:${'*'}*`)), 1)
  t.equal(await feed(a).get('user:2:x'), 'user:2:x')
  await t.rejects(feed(b).deletePattern(keyGlob`${''}`), { code: 'FRS_INVALID_KEY_PART' }, 'an empty pattern is refused')
})

t.test('values round-trip exactly: lone surrogates and own __proto__ keys', async (t) => {
  const { a, b } = await twoApps(t)
  const values: unknown[] = [
    'a\ud800b', '\udc00', 'pair \ud83d\ude00 ok',
    { text: 'x\udfffy', list: ['\ud800'] },
    new Map([['\ud801', new Set(['\udc01'])]]),
    JSON.parse('{"__proto__": {"admin": true}, "name": "n"}'),
    { nested: JSON.parse('{"__proto__": [1, 2]}'), when: new Date(5) },
    JSON.parse('{"$t": "x", "__proto__": "tagged"}')
  ]
  for (const [i, value] of values.entries()) {
    t.equal(await a.cache.set(`v${i}`, value), true)
    const back = await b.cache.get(`v${i}`)
    t.same(back, value, `value ${i} round-trips`)
    if (typeof value === 'string') t.equal(back, value, `string ${i} is the same string`)
  }
  const proto = await b.cache.get<Record<string, unknown>>('v5')
  t.ok(proto !== undefined && Object.hasOwn(proto, '__proto__'), 'an own __proto__ key stays an own key')
  t.equal(Object.getPrototypeOf(proto), Object.prototype, 'and sets no prototype')
  t.equal((proto as { admin?: unknown }).admin, undefined)
  t.ok(Object.hasOwn(await b.cache.get<Record<string, unknown>>('v7') ?? {}, '__proto__'), 'also in an object with a "$t" key')
})
