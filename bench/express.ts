// Express: this suite's Express middleware against a bare Express 5 route and against the
// usual Express peers on the same Redis, in one run:
// - rate limiting: `suite.rateLimit()` against express-rate-limit with rate-limit-redis (an
//   ioredis client's `call` as its sendCommand), with a limit no run reaches, from one client
//   and from 10,000 clients keyed by a header (as bench/rate-limit.ts);
// - sessions: `suite.sessions.middleware` against express-session with connect-redis (node-redis),
//   on a read-mostly route (reads the session, never changes it) and a write route (changes it on
//   every request), each row sending one session cookie made by a login just before it (as
//   bench/session.ts).
// Rows run interleaved, one server at a time, BENCH_ROUNDS times (default 3), and each row keeps
// its median; ratios are to the bare Express route.
import { fileURLToPath } from 'node:url'
import { installPeers, interleaved, load, report } from './harness.js'
import type { LoadOptions, Report } from './harness.js'

const CLIENTS = { name: 'x-client', clients: 10_000 }
const PEER_RATE_LIMIT = 'express-rate-limit (redis)'
const PEER_SESSION = 'express-session + connect-redis'

interface Row { name: string, server: string, env?: Record<string, string>, path?: string, method?: 'GET' | 'POST', clientHeader?: typeof CLIENTS, login?: boolean }
const ROWS: Row[] = [
  { name: 'bare express', server: 'express-bare' },
  { name: 'suite rateLimit()', server: 'express-rate-limit-ours' },
  { name: PEER_RATE_LIMIT, server: 'express-rate-limit-peer' },
  { name: 'suite rateLimit(), 10,000 clients', server: 'express-rate-limit-ours', env: { KEY_HEADER: CLIENTS.name }, clientHeader: CLIENTS },
  { name: `${PEER_RATE_LIMIT}, 10,000 clients`, server: 'express-rate-limit-peer', env: { KEY_HEADER: CLIENTS.name }, clientHeader: CLIENTS },
  { name: 'suite sessions, read', server: 'express-session-ours', path: '/read', login: true },
  { name: `${PEER_SESSION}, read`, server: 'express-session-peer', path: '/read', login: true },
  { name: 'suite sessions, write', server: 'express-session-ours', path: '/write', method: 'POST', login: true },
  { name: `${PEER_SESSION}, write`, server: 'express-session-peer', path: '/write', method: 'POST', login: true }
]

async function loginCookie (base: string): Promise<string> {
  const res = await fetch(`${base}/login`, { method: 'POST' })
  const cookie = res.headers.get('set-cookie')?.split(';')[0]
  if (res.status !== 200 || cookie === undefined) throw new Error(`login at ${base} failed: ${res.status}`)
  return cookie
}

export async function run (): Promise<Report> {
  installPeers(['express-rate-limit', 'rate-limit-redis', 'connect-redis', 'redis'])
  const rows = await interleaved(ROWS, async (row, server) => {
    const opts: LoadOptions = { name: row.name, url: server.url + (row.path ?? '/'), method: row.method ?? 'GET', clientHeader: row.clientHeader }
    if (row.login === true) opts.headers = { cookie: await loginCookie(server.url) }
    return await load(opts)
  })
  const out = report('express', 'Express: the suite\'s middleware vs express-rate-limit + rate-limit-redis and express-session + connect-redis, one Redis', 'bare express', rows)
  const rps = (name: string) => rows.find((r) => r.name === name)?.reqPerSec ?? NaN
  const ratio = (a: string, b: string) => (rps(a) / rps(b)).toFixed(2)
  console.log(`rate limit, one client: suite / ${PEER_RATE_LIMIT} = ${ratio('suite rateLimit()', PEER_RATE_LIMIT)}x; suite / bare = ${ratio('suite rateLimit()', 'bare express')}x`)
  console.log(`rate limit, 10,000 clients: suite / ${PEER_RATE_LIMIT} = ${ratio('suite rateLimit(), 10,000 clients', `${PEER_RATE_LIMIT}, 10,000 clients`)}x; suite / bare = ${ratio('suite rateLimit(), 10,000 clients', 'bare express')}x`)
  for (const route of ['read', 'write']) {
    console.log(`sessions, ${route}: suite / ${PEER_SESSION} = ${ratio(`suite sessions, ${route}`, `${PEER_SESSION}, ${route}`)}x; suite / bare = ${ratio(`suite sessions, ${route}`, 'bare express')}x`)
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()
