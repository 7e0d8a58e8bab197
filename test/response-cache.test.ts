import t from 'tap'
import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import cachePlugin from '../plugins/cache.js'
import responseCache from '../plugins/response-cache.js'
import type { ResponseCacheOptions } from '../plugins/response-cache.js'
import { buildApp } from './fixtures/app.js'
import { assertKeysHaveTtl, freshPrefix } from './fixtures/redis.js'

interface Counted { app: FastifyInstance, calls: Record<string, number> }

/** An app with the cache plugins and a set of routes that count their handler runs. */
async function cachedApp (t: Parameters<typeof buildApp>[0], opts: ResponseCacheOptions = {}, prefix = freshPrefix()): Promise<Counted> {
  const calls: Record<string, number> = {}
  const count = (name: string) => { calls[name] = (calls[name] ?? 0) + 1 }
  const app = await buildApp(t, { prefix }, async (app) => {
    await app.register(cachePlugin)
    await app.register(responseCache, opts)
    app.get('/item', { config: { cache: { ttl: '10s', tags: ['items'] } } }, async (request) => {
      count('item')
      return { n: calls.item, q: request.query }
    })
    app.get('/countdown', { config: { cache: { ttl: '10s', cacheControl: { maxAge: 'ttl' } } } }, async () => { count('countdown'); return { n: calls.countdown } })
    app.get('/slow', { config: { cache: { ttl: '10s' } } }, async () => {
      count('slow')
      await new Promise((resolve) => setTimeout(resolve, 50))
      return { n: calls.slow }
    })
    app.get('/missing', { config: { cache: true } }, async (_req, reply) => { count('missing'); return reply.code(404).send({ n: calls.missing }) })
    app.get('/cookie', { config: { cache: true } }, async (_req, reply) => { count('cookie'); return reply.header('set-cookie', 'a=b').send({ n: calls.cookie }) })
    app.get('/private', { config: { cache: true } }, async (_req, reply) => { count('private'); return reply.header('cache-control', 'private').send({ n: calls.private }) })
    app.get('/nostore', { config: { cache: true } }, async (_req, reply) => { count('nostore'); return reply.header('cache-control', 'no-store').send({ n: calls.nostore }) })
    app.get('/stream', { config: { cache: true } }, async (_req, reply) => { count('stream'); return reply.type('text/plain').send(Readable.from([`s${calls.stream}`])) })
    app.get('/stream-buffered', { config: { cache: { bufferStreams: true } } }, async (_req, reply) => { count('sb'); return reply.type('text/plain').send(Readable.from([`s${calls.sb}`])) })
    app.get('/lang', { config: { cache: { vary: ['accept-language'] } } }, async (request) => { count('lang'); return { lang: request.headers['accept-language'] ?? null, n: calls.lang } })
    app.get('/enc', { config: { cache: { vary: ['accept-encoding'] } } }, async (request) => { count('enc'); return { ae: request.headers['accept-encoding'] ?? null, n: calls.enc } })
    app.get('/me', { config: { cache: { perUser: (req: { headers: Record<string, string> }) => req.headers['x-user'] } } }, async (request) => { count('me'); return { user: request.headers['x-user'], n: calls.me } })
    app.get('/swr', { config: { cache: { ttl: '1s', staleWhileRevalidate: '20s' } } }, async () => { count('swr'); return { n: calls.swr } })
    app.post('/item', { config: { invalidates: { tags: ['items'] } } }, async () => ({ ok: true }))
    app.post('/item-fails', { config: { invalidates: { tags: ['items'] } } }, async (_req, reply) => reply.code(400).send({ ok: false }))
  })
  return { app, calls }
}

t.test('MISS then HIT, with ETag, Age and public, no-cache by default', async (t) => {
  const { app, calls } = await cachedApp(t)
  const first = await app.inject('/item')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['x-cache'], 'MISS')
  const second = await app.inject('/item')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.body, first.body)
  t.equal(calls.item, 1)
  t.equal(second.headers.etag, first.headers.etag)
  t.match(second.headers.etag, /^"[A-Za-z0-9_-]+"$/, 'strong ETag')
  t.equal(second.headers['content-type'], first.headers['content-type'])
  t.equal(second.headers['cache-control'], 'public, no-cache', 'downstream caches revalidate by default')
  t.equal(first.headers['cache-control'], 'public, no-cache')
  t.equal(second.headers.age, '0')
  await assertKeysHaveTtl(t, app.redis, app.redisSuite.prefix)
})

t.test('query parameter order does not matter; values do', async (t) => {
  const { app, calls } = await cachedApp(t)
  await app.inject('/item?a=1&b=2')
  t.equal((await app.inject('/item?b=2&a=1')).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/item?a=1&b=3')).headers['x-cache'], 'MISS')
  t.equal(calls.item, 2)
})

t.test('never cached: other statuses, Set-Cookie, private, no-store, streams', async (t) => {
  const { app, calls } = await cachedApp(t)
  for (const path of ['/missing', '/cookie', '/private', '/nostore', '/stream']) {
    const a = await app.inject(path)
    const b = await app.inject(path)
    t.equal(b.headers['x-cache'], 'BYPASS', `${path} bypassed`)
    t.not(a.body, b.body, `${path} ran twice`)
  }
  t.same([calls.missing, calls.cookie, calls.private, calls.nostore, calls.stream], [2, 2, 2, 2, 2])
  await app.inject('/stream-buffered')
  const hit = await app.inject('/stream-buffered')
  t.equal(hit.headers['x-cache'], 'HIT', 'a stream is cached when the route opts in to buffering')
  t.equal(hit.body, 's1')
})

t.test('credentials never get a shared entry', async (t) => {
  const { app, calls } = await cachedApp(t)
  await app.inject('/item')
  const auth = await app.inject({ url: '/item', headers: { authorization: 'Bearer abc' } })
  t.equal(auth.headers['x-cache'], 'BYPASS')
  const session = await app.inject({ url: '/item', headers: { cookie: 'theme=dark; sessionId=xyz' } })
  t.equal(session.headers['x-cache'], 'BYPASS')
  t.equal(calls.item, 3, 'both ran the handler')
  t.equal((await app.inject({ url: '/item', headers: { cookie: 'theme=dark' } })).headers['x-cache'], 'HIT', 'other cookies do not matter')
})

t.test('perUser: two users never see each other\'s body', async (t) => {
  const { app } = await cachedApp(t)
  const users = ['alice', 'bob', 'carol']
  const results = await Promise.all(Array.from({ length: 90 }, (_, i) => {
    const user = users[i % 3] as string
    return app.inject({ url: '/me', headers: { 'x-user': user, authorization: `Bearer ${user}` } }).then((res) => ({ user, res }))
  }))
  const wrong = results.filter(({ user, res }) => res.json().user !== user)
  t.equal(wrong.length, 0, 'every body belongs to its user')
  const hit = await app.inject({ url: '/me', headers: { 'x-user': 'bob', authorization: 'Bearer bob' } })
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['cache-control'], 'private, no-cache')
  const anon = await app.inject({ url: '/me', headers: { authorization: 'Bearer x' } })
  t.equal(anon.headers['x-cache'], 'BYPASS', 'credentials without a user: bypass')
})

t.test('If-None-Match gets 304 without running the handler', async (t) => {
  const { app, calls } = await cachedApp(t)
  const first = await app.inject('/item')
  const etag = first.headers.etag as string
  for (const inm of [etag, `"nope", ${etag}`, `W/${etag}`, '*']) {
    const res = await app.inject({ url: '/item', headers: { 'if-none-match': inm } })
    t.equal(res.statusCode, 304, inm)
    t.equal(res.body, '')
    t.equal(res.headers.etag, etag)
  }
  t.equal((await app.inject({ url: '/item', headers: { 'if-none-match': '"other"' } })).statusCode, 200)
  t.equal(calls.item, 1)
})

t.test('HEAD is answered from the GET entry', async (t) => {
  const { app, calls } = await cachedApp(t)
  const get = await app.inject('/item')
  const head = await app.inject({ method: 'HEAD', url: '/item' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['x-cache'], 'HIT')
  t.equal(head.body, '')
  t.equal(head.headers.etag, get.headers.etag)
  t.equal(calls.item, 1)
})

t.test('Vary headers key the entry', async (t) => {
  const { app, calls } = await cachedApp(t)
  const en = await app.inject({ url: '/lang', headers: { 'accept-language': 'en' } })
  const fr = await app.inject({ url: '/lang', headers: { 'accept-language': 'fr' } })
  t.equal(fr.json().lang, 'fr')
  t.equal((await app.inject({ url: '/lang', headers: { 'accept-language': 'en' } })).body, en.body)
  t.equal(calls.lang, 2)
})

t.test('Accept-Encoding in vary keys by the coding the client would get', async (t) => {
  const { app, calls } = await cachedApp(t)
  await app.inject({ url: '/enc', headers: { 'accept-encoding': 'gzip' } })
  t.equal((await app.inject({ url: '/enc', headers: { 'accept-encoding': 'deflate, gzip;q=0' } })).headers['x-cache'], 'MISS', 'deflate (gzip refused) is another entry')
  t.equal((await app.inject({ url: '/enc', headers: { 'accept-encoding': 'gzip, identity' } })).headers['x-cache'], 'HIT', 'the same coding shares one')
  t.equal((await app.inject({ url: '/enc', headers: { 'accept-encoding': 'br, gzip' } })).headers['x-cache'], 'MISS', 'br is another entry')
  t.equal(calls.enc, 3)
})

t.test('Age counts up and max-age down', async (t) => {
  const { app } = await cachedApp(t)
  await app.inject('/countdown')
  const deadline = Date.now() + 4000
  let res = await app.inject('/countdown')
  while (res.headers.age === '0' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    res = await app.inject('/countdown')
  }
  t.equal(res.headers.age, '1')
  t.match(res.headers['cache-control'], /max-age=(8|9)$/)
})

t.test('500 concurrent cold requests run the handler once', async (t) => {
  const { app, calls } = await cachedApp(t)
  const all = await Promise.all(Array.from({ length: 500 }, () => app.inject('/slow')))
  t.equal(calls.slow, 1)
  t.ok(all.every((r) => r.statusCode === 200 && r.body === all[0]?.body), 'every caller got the one body')
})

t.test('two app instances on one Redis run the handler once with the lock', async (t) => {
  const prefix = freshPrefix()
  const a = await cachedApp(t, { lock: true }, prefix)
  const b = await cachedApp(t, { lock: true }, prefix)
  const all = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).app.inject('/slow')))
  t.equal((a.calls.slow ?? 0) + (b.calls.slow ?? 0), 1, 'one handler run across both instances')
  t.ok(all.every((r) => r.statusCode === 200 && r.body === all[0]?.body))
})

t.test('stale-while-revalidate: stale served at once, one refresh', async (t) => {
  const { app, calls } = await cachedApp(t)
  await app.inject('/swr')
  await new Promise((resolve) => setTimeout(resolve, 1100)) // past the 1 s ttl, inside the grace
  const all = await Promise.all(Array.from({ length: 100 }, () => app.inject('/swr')))
  t.ok(all.every((r) => r.headers['x-cache'] === 'STALE' && r.json().n === 1), 'all 100 served the stale entry')
  const deadline = Date.now() + 3000
  let fresh = await app.inject('/swr')
  while (fresh.json().n === 1 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    fresh = await app.inject('/swr')
  }
  const runs = calls.swr
  t.equal(fresh.json().n, 2, 'the refreshed entry is served')
  t.equal(runs, 2, 'exactly one refresh ran')
})

t.test('a POST that invalidates a tag makes the next GET a MISS; only after a 2xx', async (t) => {
  const { app, calls } = await cachedApp(t)
  await app.inject('/item')
  await app.inject({ method: 'POST', url: '/item-fails' })
  t.equal((await app.inject('/item')).headers['x-cache'], 'HIT', 'a 4xx invalidates nothing')
  await app.inject({ method: 'POST', url: '/item' })
  t.equal((await app.inject('/item')).headers['x-cache'], 'MISS')
  t.equal(calls.item, 2)
  await app.responseCache.invalidateUrl('/item?x=1')
  t.equal((await app.inject('/item')).headers['x-cache'], 'MISS', 'invalidateUrl drops the path')
  await app.inject('/item?z=1')
  await app.cache.invalidateTags(['items'])
  t.equal((await app.inject('/item?z=1')).headers['x-cache'], 'MISS', 'fastify.cache.invalidateTags reaches entries')
})

t.test('bad route config fails at startup', async (t) => {
  await t.rejects(cachedApp(t, { ttl: 'soon' as never }), { code: 'FRS_INVALID_DURATION', message: /"ttl"/ })
  await t.rejects(buildApp(t, {}, async (app) => {
    await app.register(cachePlugin)
    await app.register(responseCache)
    app.post('/x', { config: { cache: true } }, async () => 'x')
  }), { code: 'FRS_INVALID_OPTION', message: /only GET/ })
  await t.rejects(buildApp(t, {}, async (app) => {
    await app.register(cachePlugin)
    await app.register(responseCache)
    app.get('/x', { config: { cache: { vary: ['bad header'] } } }, async () => 'x')
  }), { code: 'FRS_INVALID_OPTION', message: /vary/ })
})
