// The response cache as browsers, CDNs and other app instances see it, over real HTTP:
// invalidations that hold while fills and refreshes run (two app processes), the session
// cookie learned from the session plugin, Vary, Cache-Control apart from the ttl, the order of
// repeated query names, If-Modified-Since, stale-if-error, CDN tag headers and a client's
// no-cache.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { suite } from '../plugins/index.js'
import type { SuiteOptions } from '../plugins/index.js'
import type { TeardownHost } from './fixtures/app.js'
import { startAppProcess } from './fixtures/app-process.js'
import { fuzzSeed, prng } from './fixtures/prng.js'
import { freshPrefix, needsRedis, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

/** An app with the suite listening on loopback; `routes` adds routes; closed when the test ends. */
async function listening (t: TeardownHost, opts: Omit<SuiteOptions, 'redis'>, routes: (app: FastifyInstance, runs: Record<string, number>) => void): Promise<{ base: string, app: FastifyInstance, runs: Record<string, number> }> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const runs: Record<string, number> = {}
  await app.register(suite, { redis: { ...redis.connection, prefix: freshPrefix() }, ...opts })
  routes(app, runs)
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  return { base, app, runs }
}

const ran = (runs: Record<string, number>, name: string): number => (runs[name] = (runs[name] ?? 0) + 1)

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, text: string }> {
  const res = await fetch(url, { headers })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

const dataApps = (() => {
  let started: Promise<string[]> | undefined
  return (): Promise<string[]> => {
    const prefix = freshPrefix()
    started ??= Promise.all([0, 1].map(() => startAppProcess(t, 'http-cache-app.ts', { PREFIX: prefix }))).then((apps) => apps.map((a) => a.ready.base))
    return started
  }
})()

for (const lock of [false, true]) {
  t.test(`two app processes${lock ? ' with lock' : ''}: once an invalidation has answered, no later request gets a body computed before it`, { skip: needsRedis('two app processes share one Redis') }, async (t) => {
    const bases = await dataApps()
    const route = lock ? '/locked/data' : '/data'
    const seed = fuzzSeed()
    const random = prng(seed)
    const pick = (): string => bases[Math.floor(random() * bases.length)] as string
    const posts: Array<{ v: number, at: number }> = []
    const gets: Array<{ start: number, v: number, cache: string }> = []
    // At least 2.5 s, and on a loaded machine longer (up to 10 s), until every path took part.
    const started = performance.now()
    const kinds = new Set<string>()
    const busy = (): boolean => {
      const now = performance.now()
      if (now - started < 2500) return true
      const enough = posts.length >= 8 && gets.length >= (lock ? 100 : 300) && kinds.has('HIT') && kinds.has('MISS') && (lock || kinds.has('STALE'))
      return !enough && now - started < 10_000
    }
    const writer = (async () => {
      while (busy()) {
        await sleep(40 + Math.floor(random() * 200))
        const res = await fetch(pick() + '/data', { method: 'POST' })
        const { v } = await res.json() as { v: number }
        posts.push({ v, at: performance.now() })
      }
    })()
    const readers = Array.from({ length: 40 }, async () => {
      while (busy()) {
        const start = performance.now()
        const res = await fetch(pick() + route)
        const { v } = await res.json() as { v: number }
        gets.push({ start, v, cache: res.headers.get('x-cache') ?? '' })
        kinds.add(res.headers.get('x-cache') ?? '')
        await sleep(Math.floor(random() * 10))
      }
    })
    await Promise.all([writer, ...readers])
    const late = gets.filter((g) => posts.some((p) => p.at < g.start && p.v > g.v))
    t.same(late.slice(0, 5), [], `no GET after a POST answered got an older version (seed ${seed})`)
    t.ok(posts.length >= 8 && gets.length >= 100, `${posts.length} POSTs and ${gets.length} GETs`)
    // With the lock, each invalidation makes the other instance wait for the holder's fill, so
    // an entry rarely ages into its stale window between writes: stale refreshes are the
    // no-lock run's part.
    t.ok(kinds.has('HIT') && kinds.has('MISS') && (lock || kinds.has('STALE')), `the paths took part: ${[...kinds].join(', ')}`)
  })
}

t.test('the session cookie is learned from the session plugin, whatever its name', async (t) => {
  for (const session of [{ cookieName: 'app_sess' }, { cookieName: 'app_sess', hostPrefix: true, cookie: { secure: true } }]) {
    const { base } = await listening(t, { responseCache: true, session: { secret: 's'.repeat(40), cookie: { secure: false }, ...session } }, (app) => {
      app.post('/login', async (request) => { request.session.set('userId', 'u1'); return { ok: true } })
      app.get('/page', { config: { cache: true } }, async (request) => ({ user: request.session.get('userId') ?? null }))
    })
    const name = session.hostPrefix === true ? '__Host-app_sess' : 'app_sess'
    let cookie = `${name}=forged-or-not`
    if (session.hostPrefix !== true) {
      const login = await fetch(base + '/login', { method: 'POST' })
      cookie = login.headers.get('set-cookie')?.split(';')[0] ?? ''
      t.match(cookie, /^app_sess=/)
    }
    const mine = await get(base + '/page', { cookie })
    t.equal(mine.headers.get('x-cache'), 'BYPASS', `${name}: a request with the session cookie bypasses the shared entry`)
    if (session.hostPrefix !== true) t.same(JSON.parse(mine.text), { user: 'u1' })
    const anon = await get(base + '/page')
    t.same(JSON.parse(anon.text), { user: null }, `${name}: an anonymous client never gets the logged-in page`)
    t.equal(anon.headers.get('x-cache'), 'MISS')
    t.equal((await get(base + '/page', { cookie })).headers.get('x-cache'), 'BYPASS', `${name}: nor the other way round`)
  }
})

t.test('Vary: sent for the keyed headers, learned from the handler, never stored for *', async (t) => {
  const { base, runs } = await listening(t, { responseCache: true }, (app) => {
    app.get('/lang', { config: { cache: { vary: ['accept-language'] } } }, async (request) => ({ lang: request.headers['accept-language'] ?? null, n: ran(runs, 'lang') }))
    app.get('/theme', { config: { cache: true } }, async (request, reply) => {
      reply.header('vary', 'X-Theme')
      return { theme: request.headers['x-theme'] ?? null, n: ran(runs, 'theme') }
    })
    app.get('/star', { config: { cache: true } }, async (_request, reply) => { reply.header('vary', '*'); return { n: ran(runs, 'star') } })
  })
  const en = await get(base + '/lang', { 'accept-language': 'en' })
  t.equal(en.headers.get('vary'), 'accept-language', 'a MISS says what it varies on')
  const enHit = await get(base + '/lang', { 'accept-language': 'en' })
  t.equal(enHit.headers.get('x-cache'), 'HIT')
  t.equal(enHit.headers.get('vary'), 'accept-language', 'and so does a HIT')
  const notModified = await get(base + '/lang', { 'accept-language': 'en', 'if-none-match': enHit.headers.get('etag') ?? '' })
  t.equal(notModified.status, 304)
  t.equal(notModified.headers.get('vary'), 'accept-language', 'and a 304')

  // The handler's Vary: the first response teaches the route, and is not stored under a key that lacks the header.
  const dark = await get(base + '/theme', { 'x-theme': 'dark' })
  t.equal(dark.headers.get('vary'), 'X-Theme')
  const light = await get(base + '/theme', { 'x-theme': 'light' })
  t.same(JSON.parse(light.text).theme, 'light', 'light never gets the dark page')
  const light2 = await get(base + '/theme', { 'x-theme': 'light' })
  t.equal(light2.headers.get('x-cache'), 'HIT')
  t.same(JSON.parse(light2.text).theme, 'light')
  t.match(light2.headers.get('vary'), /x-theme/i)
  const dark2 = await get(base + '/theme', { 'x-theme': 'dark' })
  t.same(JSON.parse(dark2.text).theme, 'dark')

  await get(base + '/star')
  const star = await get(base + '/star')
  t.equal(star.headers.get('x-cache'), 'BYPASS', 'Vary: * is never stored')
  t.equal(runs.star, 2)
})

t.test('Cache-Control: what downstream caches get is the route\'s choice, and a handler\'s own wins', async (t) => {
  const { base, runs } = await listening(t, { responseCache: true, session: { secret: 's'.repeat(40), cookie: { secure: false } } }, (app) => {
    app.get('/default', { config: { cache: { ttl: '1m' } } }, async () => ({ n: ran(runs, 'default') }))
    app.get('/cdn', { config: { cache: { ttl: '1m', cacheControl: { maxAge: '30s', sMaxAge: '5m', staleWhileRevalidate: '30s', staleIfError: '1d' } } } }, async () => 'cdn')
    app.get('/countdown', { config: { cache: { ttl: '1m', cacheControl: { maxAge: 'ttl' } } } }, async () => 'countdown')
    app.get('/literal', { config: { cache: { cacheControl: 'public, max-age=5, must-revalidate' } } }, async () => 'literal')
    app.get('/none', { config: { cache: { cacheControl: false } } }, async () => 'none')
    app.get('/own', { config: { cache: { cacheControl: { maxAge: '1h' } } } }, async (_request, reply) => { reply.header('cache-control', 'public, max-age=30'); return 'own' })
    app.post('/login', async (request) => { request.session.set('userId', 'u1'); return { ok: true } })
    app.get('/mine', { config: { cache: { perUser: true, cacheControl: { maxAge: '1m', sMaxAge: '1h' } } } }, async (request) => ({ user: request.session.get('userId') }))
    app.get('/mine-own', { config: { cache: { perUser: true } } }, async (_request, reply) => { reply.header('cache-control', 'public, s-maxage=600, max-age=60'); return 'x' })
  })
  const both = async (path: string, headers: Record<string, string> = {}): Promise<Array<string | null>> => {
    const miss = await get(base + path, headers)
    const hit = await get(base + path, headers)
    t.equal(hit.headers.get('x-cache'), 'HIT', `${path} is cached`)
    return [miss.headers.get('cache-control'), hit.headers.get('cache-control')]
  }
  t.same(await both('/default'), ['public, no-cache', 'public, no-cache'], 'by default downstream caches revalidate each time, so an invalidation reaches them')
  const etag = (await get(base + '/default')).headers.get('etag') ?? ''
  t.equal((await get(base + '/default', { 'if-none-match': etag })).status, 304, 'and the revalidation is a cheap 304')
  t.same(await both('/cdn'), Array(2).fill('public, max-age=30, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400'))
  t.match((await both('/countdown'))[1], /^public, max-age=(59|60)$/, "'ttl' counts down to the entry's expiry")
  t.same(await both('/literal'), Array(2).fill('public, max-age=5, must-revalidate'))
  t.same(await both('/none'), [null, null], 'false sends none')
  t.same(await both('/own'), Array(2).fill('public, max-age=30'), "the handler's own value is kept, not replaced")
  const login = await fetch(base + '/login', { method: 'POST' })
  const cookie = login.headers.get('set-cookie')?.split(';')[0] ?? ''
  t.same(await both('/mine', { cookie }), Array(2).fill('private, max-age=60'), 'a per-user entry is private and has no s-maxage')
  t.same(await both('/mine-own', { cookie }), Array(2).fill('private, max-age=60'), 'even when the handler said public')
  t.equal(runs.default, 1)
})

t.test('repeated query names keep their order; different names do not', async (t) => {
  const { base, runs } = await listening(t, { responseCache: true }, (app) => {
    app.get('/list', { config: { cache: true } }, async (request) => ({ q: request.query, n: ran(runs, 'list') }))
  })
  const a = JSON.parse((await get(base + '/list?sort=name&sort=price')).text) as { q: { sort: string[] } }
  const b = JSON.parse((await get(base + '/list?sort=price&sort=name')).text) as { q: { sort: string[] } }
  t.same(a.q.sort, ['name', 'price'])
  t.same(b.q.sort, ['price', 'name'], 'the other order is its own entry')
  t.equal((await get(base + '/list?page=2&sort=name&sort=price')).headers.get('x-cache'), 'MISS')
  t.equal((await get(base + '/list?sort=name&page=2&sort=price')).headers.get('x-cache'), 'HIT', 'names in another order share one entry')
  t.equal(runs.list, 3)
})

t.test('Last-Modified is kept and If-Modified-Since answered with 304 without the handler', async (t) => {
  const modified = 'Tue, 01 Dec 2026 10:00:00 GMT'
  const { base, runs } = await listening(t, { responseCache: true }, (app) => {
    app.get('/doc', { config: { cache: true } }, async (_request, reply) => { reply.header('last-modified', modified); return { n: ran(runs, 'doc') } })
  })
  const first = await get(base + '/doc')
  t.equal(first.headers.get('last-modified'), modified)
  const hit = await get(base + '/doc')
  t.equal(hit.headers.get('last-modified'), modified, 'a HIT carries it')
  const same = await get(base + '/doc', { 'if-modified-since': modified })
  t.equal(same.status, 304)
  t.equal(same.headers.get('last-modified'), modified)
  t.equal((await get(base + '/doc', { 'if-modified-since': 'Wed, 02 Dec 2026 10:00:00 GMT' })).status, 304, 'a later date')
  t.equal((await get(base + '/doc', { 'if-modified-since': 'Mon, 30 Nov 2026 10:00:00 GMT' })).status, 200, 'an earlier date gets the body')
  t.equal((await get(base + '/doc', { 'if-modified-since': 'not a date' })).status, 200, 'an invalid date is ignored')
  t.equal((await get(base + '/doc', { 'if-modified-since': modified, 'if-none-match': '"other"' })).status, 200, 'If-None-Match takes precedence')
  t.equal(runs.doc, 1)
})

t.test('stale-if-error: a failing handler is answered with the stale entry inside the window, and logged', async (t) => {
  const warnings: string[] = []
  let failing = false
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push((JSON.parse(line) as { msg: string }).msg) } } } })
  t.teardown(() => app.close())
  await app.register(suite, { redis: { ...redis.connection, prefix: freshPrefix() }, responseCache: true })
  let n = 0
  app.get('/feed', { config: { cache: { ttl: '200ms', staleIfError: '1500ms' } } }, async (_request, reply) => {
    n++
    if (failing) return reply.code(503).send({ error: 'down' })
    return { n }
  })
  app.get('/boom', { config: { cache: { ttl: '200ms', staleIfError: '10s' } } }, async () => {
    if (failing) throw new Error('database down')
    return { ok: true }
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.equal((await get(base + '/feed')).headers.get('x-cache'), 'MISS')
  await get(base + '/boom')
  await sleep(300)
  failing = true
  const stale = await get(base + '/feed')
  t.equal(stale.status, 200, 'a 5xx is replaced by the stale entry')
  t.equal(stale.headers.get('x-cache'), 'STALE')
  t.same(JSON.parse(stale.text), { n: 1 })
  t.match(stale.headers.get('content-type'), /application\/json/)
  const thrown = await get(base + '/boom')
  t.equal(thrown.status, 200, 'so is a thrown error')
  t.same(JSON.parse(thrown.text), { ok: true })
  t.ok(warnings.some((w) => /stale-if-error/.test(w)), 'logged')
  failing = false
  const back = await get(base + '/feed')
  t.equal(back.headers.get('x-cache'), 'MISS', 'a working handler refreshes the entry')
  t.same(JSON.parse(back.text), { n: 3 })
  await sleep(1800)
  failing = true
  t.equal((await get(base + '/feed')).status, 503, 'past the window the error goes out')
})

t.test('tagHeader sends the entry tags for CDN purges', async (t) => {
  for (const [tagHeader, expected] of [['surrogate-key', 'listings listing:42'], ['cache-tag', 'listings,listing:42']] as const) {
    const { base } = await listening(t, { responseCache: { tagHeader }, session: { secret: 's'.repeat(40), cookie: { secure: false } } }, (app) => {
      app.get('/listing', { config: { cache: { tags: ['listings', 'listing:42', 'has space', 'has,comma'] } } }, async () => 'l')
      app.get('/untagged', { config: { cache: true } }, async () => 'u')
    })
    t.equal((await get(base + '/listing')).headers.get(tagHeader), expected, `${tagHeader} on a MISS (tags a header cannot carry are left out)`)
    t.equal((await get(base + '/listing')).headers.get(tagHeader), expected, 'and on a HIT')
    t.equal((await get(base + '/untagged')).headers.get(tagHeader), null)
  }
})

t.test("a client's no-cache: ignored by default, or a fresh run with clientNoCache: 'revalidate'", async (t) => {
  const { base, runs } = await listening(t, { responseCache: true }, (app) => {
    app.get('/ignore', { config: { cache: true } }, async () => ({ n: ran(runs, 'ignore') }))
    app.get('/revalidate', { config: { cache: { clientNoCache: 'revalidate' } } }, async () => ({ n: ran(runs, 'revalidate') }))
  })
  for (const headers of [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=0' }, { pragma: 'no-cache' }] as Array<Record<string, string>>) {
    await get(base + '/ignore')
    t.equal((await get(base + '/ignore', headers)).headers.get('x-cache'), 'HIT', `ignore: ${JSON.stringify(headers)} is answered from the cache`)
    await get(base + '/revalidate')
    const fresh = await get(base + '/revalidate', headers)
    t.equal(fresh.headers.get('x-cache'), 'MISS', `revalidate: ${JSON.stringify(headers)} runs the handler`)
    const after = await get(base + '/revalidate')
    t.equal(after.headers.get('x-cache'), 'HIT')
    t.equal(after.text, fresh.text, 'and its response is the new entry')
  }
  t.equal(runs.ignore, 1)
  t.equal(runs.revalidate, 4)
  t.equal((await get(base + '/revalidate', { 'cache-control': 'max-age=60' })).headers.get('x-cache'), 'HIT', 'other request directives change nothing')
})

t.test("a client's no-cache run that an invalidation overtakes does not leave its value behind", async (t) => {
  let version = 1
  const { base, app } = await listening(t, { responseCache: true }, (app) => {
    app.get('/slow', { config: { cache: { clientNoCache: 'revalidate', tags: ['slow'] } } }, async () => {
      const v = version
      await sleep(150)
      return { v }
    })
  })
  await get(base + '/slow')
  t.equal((await get(base + '/slow')).headers.get('x-cache'), 'HIT', 'a fresh entry')
  const running = get(base + '/slow', { 'cache-control': 'no-cache' })
  await sleep(50)
  version = 2
  await app.cache.invalidateTags(['slow'])
  t.same(JSON.parse((await running).text), { v: 1 }, 'the run began before the change')
  const next = await get(base + '/slow')
  t.equal(next.headers.get('x-cache'), 'MISS', 'its value was computed before the invalidation: not served')
  t.same(JSON.parse(next.text), { v: 2 })
})

t.test('bad new options are refused at startup, naming them', async (t) => {
  const start = async (opts: Omit<SuiteOptions, 'redis'>, route?: object): Promise<void> => {
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await app.register(suite, { redis: { ...redis.connection, prefix: freshPrefix() }, ...opts })
    if (route !== undefined) app.get('/x', { config: { cache: route } }, async () => 'x')
    await app.ready()
  }
  await t.rejects(start({ responseCache: { cacheControl: { maxAge: '1m', sMaxage: '1m' } as never } }), { code: 'FRS_INVALID_OPTION', message: /cacheControl\.sMaxage.*sMaxAge/ })
  await t.rejects(start({ responseCache: { tagHeader: 'x-tags' as never } }), { code: 'FRS_INVALID_OPTION', message: /tagHeader/ })
  await t.rejects(start({ responseCache: { clientNoCache: 'always' as never } }), { code: 'FRS_INVALID_OPTION', message: /clientNoCache/ })
  await t.rejects(start({ responseCache: true }, { cacheControl: 'max-age=1\r\nx: y' }), { code: 'FRS_INVALID_OPTION', message: /config\.cache\.cacheControl/ })
  await t.rejects(start({ responseCache: true }, { staleIfError: 'soon' }), { message: /config\.cache\.staleIfError/ })
})
