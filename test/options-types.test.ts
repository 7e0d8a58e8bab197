// Compiled by `npm run typecheck` (strict, exactOptionalPropertyTypes off, as tsconfig.json):
// each `@ts-expect-error` line is a typo that must stay a compile error; if one stops being
// an error, the typecheck fails. The README's `suite` example must compile as written, and it
// runs below against the test Redis.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { cache, otp, otpLoggerOptions, rateLimit, redis, responseCache, session, suite } from '../plugins/index.js'
import type { RouteCacheConfig } from '../plugins/index.js'
import { clusterMode, needsRedis, testRedis } from './fixtures/redis.js'

const secret = 'x'.repeat(40)

// The README example, as written there (run by the test at the end of this file), plus a
// line that keeps each app to close it.
const opened: FastifyInstance[] = []
async function readmeExample (): Promise<FastifyInstance> {
  const app = Fastify({ logger: { ...otpLoggerOptions() } })
  opened.push(app)
  await app.register(suite, {
    redis: { url: process.env.REDIS_URL, connections: { sessions: process.env.REDIS_SESSIONS_URL } },
    cache: { ttl: '10m' },
    responseCache: { lock: true },
    session: { secret: process.env.SESSION_SECRET, connection: 'sessions' },
    rateLimit: { anonymousRate: '100/hour', userRate: '1000/hour' },
    otp: { secret: process.env.OTP_SECRET }
  })
  return app
}

// Never called: only compiled.
export async function typos (app: FastifyInstance): Promise<void> {
  // @ts-expect-error comandTimeout is not an option (commandTimeout)
  await app.register(redis, { comandTimeout: '1s' })
  // @ts-expect-error a connection's settings are checked too
  await app.register(redis, { connections: { sessions: { url: 'redis://127.0.0.1:6379/2', optoins: {} } } })
  // @ts-expect-error tll (ttl)
  await app.register(cache, { tll: '1m' })
  // @ts-expect-error local.mx (max)
  await app.register(cache, { local: { mx: 5 } })
  await app.register(cache, { local: { ttl: '500ms', max: 1000 } })
  // @ts-expect-error a read's options: local only
  await app.cache.get('k', { locl: false })
  // @ts-expect-error tll (ttl)
  await app.register(responseCache, { tll: '1m' })
  // @ts-expect-error userRat (userRate)
  await app.register(rateLimit, { userRat: '10/s' })
  // @ts-expect-error failclosed (failClosed)
  await app.register(rateLimit, { failclosed: true })
  // @ts-expect-error ban.duraton (duration)
  await app.register(rateLimit, { rate: '1/s', ban: { after: 3, duraton: '1m' } })
  // @ts-expect-error onRedisErorr (onRedisError)
  await app.register(rateLimit, { onRedisErorr: 'local' })
  // @ts-expect-error onRedisError takes 'open' | 'closed' | 'local'
  await app.register(rateLimit, { onRedisError: 'fallback' })
  // @ts-expect-error scopes.search.rat (rate)
  await app.register(rateLimit, { scopes: { search: { rat: '1/s' } } })
  // @ts-expect-error count takes 'all' | 'failures' | 'successes'
  await app.register(rateLimit, { rate: '1/s', count: 'errors' })
  // a plan: the rate as a function of the request
  await app.register(rateLimit, { userRate: (request) => request.headers['x-pro'] === '1' ? '10000/hour' : '100/hour', scopes: { search: '30/minute' }, blockCache: 10_000, ipv6Subnet: 56, dryRun: true })
  // @ts-expect-error idleTimout (idleTimeout)
  await app.register(session, { secret, idleTimout: '1h' })
  // @ts-expect-error cookie.secrue (secure)
  await app.register(session, { secret, cookie: { secrue: true } })
  // @ts-expect-error localCache.mx (max)
  await app.register(session, { secret, localCache: { mx: 5 } })
  // @ts-expect-error a session needs a secret (it may be undefined, coming from the environment, but not left out)
  await app.register(session, {})
  // @ts-expect-error codeTTL (codeTtl)
  await app.register(otp, { secret, codeTTL: '5m' })
  // @ts-expect-error cahce (cache)
  await app.register(suite, { cahce: {} })
  // @ts-expect-error rateLimit.failclosed inside the suite
  await app.register(suite, { rateLimit: { failclosed: true } })
  // @ts-expect-error session.cookie.secrue inside the suite
  await app.register(suite, { session: { secret, cookie: { secrue: true } } })
  // @ts-expect-error lock options of the cache toolkit
  await app.cache.lock('job', { tll: '1s' })

  // Fastify infers a route's `config` type from the literal and intersects it with
  // FastifyContextConfig, so `config: { cache: { tll } }` type-checks (and is refused at
  // startup); `satisfies` makes the typo a compile error.
  // @ts-expect-error tll (ttl)
  app.get('/x', { config: { cache: { tll: '1m' } satisfies RouteCacheConfig } }, async () => 'x')
}

t.test('the README suite example starts, and refuses a missing secret naming it', { skip: clusterMode || needsRedis('it opens a second database (/2) of the server') }, async (t) => {
  const server = await testRedis()
  const saved = { ...process.env }
  t.teardown(async () => {
    process.env = saved
    await Promise.all(opened.map((app) => app.close()))
  })
  process.env.REDIS_URL = server.connection.url
  process.env.REDIS_SESSIONS_URL = `${server.connection.url as string}/2`
  process.env.SESSION_SECRET = secret
  process.env.OTP_SECRET = secret
  const app = await readmeExample()
  await app.ready()
  t.equal((app.redisConnection('sessions') as { options: { db?: number } }).options.db, 2)
  for (const decorator of ['cache', 'responseCache', 'sessions', 'rateLimit', 'otp']) t.ok(app.hasDecorator(decorator), decorator)

  delete process.env.SESSION_SECRET
  const missing = await readmeExample().then(() => null, (err: unknown) => err)
  t.match(missing, { code: 'FRS_INVALID_OPTION', message: /"secret": it is undefined \(an unset environment variable such as SESSION_SECRET\?\)/ })
  process.env.SESSION_SECRET = secret
  delete process.env.OTP_SECRET
  const noOtp = await readmeExample().then(() => null, (err: unknown) => err)
  t.match(noOtp, { code: 'FRS_INVALID_OPTION', message: /"secret": it is undefined \(an unset environment variable such as OTP_SECRET\?\)/ })
  delete process.env.REDIS_SESSIONS_URL
  const noSessions = await readmeExample().then(() => null, (err: unknown) => err)
  t.match(noSessions, { code: 'FRS_INVALID_OPTION', message: /"redis\.connections\.sessions": it is undefined/ })
})
