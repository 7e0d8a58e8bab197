// Shared benchmark harness: each server under test runs in its own Node process (so that one
// server's garbage never slows another), autocannon runs here, and results are printed as a
// table with ratios to a baseline and saved as JSON in bench/results/.
import { execSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { startRedisServer } from '../test/fixtures/redis-server.js'

const here = dirname(fileURLToPath(import.meta.url))

// Peers that cannot share the suite's node_modules live in bench/peers (its own package.json).
const peersDir = join(here, '..', '..', 'bench', 'peers')

/** Installs bench/peers when one of `names` is missing there (the first run of a bench). */
export function installPeers (names: string[]): void {
  if (names.some((name) => !existsSync(join(peersDir, 'node_modules', name, 'package.json')))) {
    execSync('npm install --no-audit --no-fund', { cwd: peersDir, stdio: 'inherit' })
  }
}

/** A package of bench/peers, loaded by name from there (its types are the caller's to state). */
export function peer <T> (name: string): T {
  return createRequire(join(peersDir, 'package.json'))(name) as T
}

export interface BenchServer { url: string, stop: () => Promise<void> }

/** REDIS_URL when set, else a throwaway redis-server for the run. */
export async function benchRedis (): Promise<{ url: string, stop: () => Promise<void> }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => {} }
  const server = await startRedisServer()
  return { url: server.url, stop: server.stop }
}

/**
 * Starts `bench/servers/<name>.js` (compiled) in a child process with `env`; the server
 * listens on 127.0.0.1 on a free port and prints `LISTENING <port>`.
 */
export function startServer (name: string, env: Record<string, string> = {}): Promise<BenchServer> {
  const child: ChildProcess = spawn(process.execPath, [join(here, 'servers', `${name}.js`)], {
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`bench server ${name} did not start: ${out}`)) }, 15_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = /LISTENING (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({
          url: `http://127.0.0.1:${m[1]}`,
          stop: () => new Promise((resolve) => {
            if (child.exitCode !== null) return resolve()
            child.once('exit', () => resolve())
            child.kill('SIGTERM')
          })
        })
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bench server ${name} exited with ${code}: ${out}`)) })
  })
}

/** What a bench server module calls once it listens. */
export function announce (port: number): void {
  process.stdout.write(`LISTENING ${port}\n`)
}

export interface LoadOptions {
  /** Row label in the report. */
  name: string
  url: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  /** Concurrent connections. @default 50 */
  connections?: number
  /** Seconds of measured load. @default Number(process.env.BENCH_SECONDS ?? 5) */
  duration?: number
  /** Seconds of unmeasured warm-up first. @default 1 */
  warmup?: number
  /** Sends this header with one of `clients` values, round robin: traffic from many clients. */
  clientHeader?: { name: string, clients: number }
}

export interface LoadResult { name: string, reqPerSec: number, p99Ms: number, non2xx: number, errors: number }

async function cannon (opts: LoadOptions, duration: number): Promise<autocannon.Result> {
  return autocannon({
    url: opts.url,
    method: opts.method ?? 'GET',
    headers: opts.headers,
    body: opts.body,
    connections: opts.connections ?? 50,
    duration,
    ...(opts.clientHeader === undefined ? {} : { requests: [{ setupRequest: clientRotation(opts.clientHeader) }] })
  })
}

function clientRotation ({ name, clients }: { name: string, clients: number }) {
  let next = 0
  return (req: autocannon.Request): autocannon.Request => {
    next = (next + 1) % clients
    return { ...req, headers: { ...req.headers, [name]: `client-${next}` } }
  }
}

/** Runs autocannon against one URL (after a warm-up) and returns req/s and p99. */
export async function load (opts: LoadOptions): Promise<LoadResult> {
  const warmup = opts.warmup ?? 1
  if (warmup > 0) await cannon(opts, warmup)
  const r = await cannon(opts, opts.duration ?? Number(process.env.BENCH_SECONDS ?? 5))
  return { name: opts.name, reqPerSec: Math.round(r.requests.average), p99Ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors }
}

/** Runs `measure` `repeat` times (interleaving is the caller's) and keeps the median by req/s. */
export function median (results: LoadResult[]): LoadResult {
  const sorted = [...results].sort((a, b) => a.reqPerSec - b.reqPerSec)
  return sorted[Math.floor(sorted.length / 2)] as LoadResult
}

/** A row of an interleaved run: a server (bench/servers/<server>.js) started with `env` on top of REDIS_URL. */
export interface ServerRow { name: string, server: string, env?: Record<string, string> }

/**
 * Runs every row BENCH_ROUNDS times (default 3), rounds interleaved, one server at a time (so
 * that no idle server competes for the cores), on one Redis; `measure` loads a started
 * server. Returns each row's median, in the order of `rows`.
 */
export async function interleaved<R extends ServerRow> (rows: readonly R[], measure: (row: R, server: BenchServer) => Promise<LoadResult>): Promise<LoadResult[]> {
  const redis = await benchRedis()
  const results = new Map<string, LoadResult[]>(rows.map((r) => [r.name, []]))
  try {
    const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
    for (let round = 0; round < rounds; round++) {
      for (const row of rows) {
        const server = await startServer(row.server, { REDIS_URL: redis.url, ...row.env })
        try {
          const result = await measure(row, server)
          if (result.non2xx > 0 || result.errors > 0) console.warn(`${result.name}: ${result.non2xx} non-2xx, ${result.errors} errors`)
          results.get(row.name)?.push(result)
        } finally {
          await server.stop()
        }
      }
    }
  } finally {
    await redis.stop()
  }
  return rows.map((r) => median(results.get(r.name) as LoadResult[]))
}

export interface Report { title: string, baseline: string, rows: Array<LoadResult & { ratio: number }>, date: string }

/** Prints a table with each row's ratio to `baseline` and writes bench/results/<file>.json. */
export function report (file: string, title: string, baseline: string, rows: LoadResult[]): Report {
  const base = rows.find((r) => r.name === baseline)
  const out: Report = {
    title,
    baseline,
    date: new Date().toISOString(),
    rows: rows.map((r) => ({ ...r, ratio: base ? Math.round((r.reqPerSec / base.reqPerSec) * 100) / 100 : NaN }))
  }
  console.log(`\n${title}`)
  console.table(out.rows.map((r) => ({ name: r.name, 'req/s': r.reqPerSec, 'p99 ms': r.p99Ms, [`× ${baseline}`]: r.ratio, non2xx: r.non2xx, errors: r.errors })))
  const dir = join(here, '..', '..', 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `${file}.json`), JSON.stringify(out, null, 2) + '\n')
  return out
}
