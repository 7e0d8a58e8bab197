// The example app stopped by SIGTERM loses nothing: the view counters' last flush reaches the
// database file before it is saved and closed, and the redis-server it started for itself
// leaves no temporary directory behind.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import initSqlJs from 'sql.js'
import { bootExample } from './fixtures/example.js'
import { clusterMode } from './fixtures/redis.js'
import { redisServerAvailable } from './fixtures/redis-server.js'

async function viewsIn (file: string): Promise<Map<number, number>> {
  const require = createRequire(import.meta.url)
  const SQL = await initSqlJs({ locateFile: (name: string) => require.resolve(`sql.js/dist/${name}`) })
  const db = new SQL.Database(readFileSync(file))
  try {
    const [result] = db.exec('select id, views from listings where views > 0 order by id')
    return new Map((result?.values ?? []).map(([id, views]) => [Number(id), Number(views)]))
  } finally {
    db.close()
  }
}

t.test('SIGTERM: every view reaches the database, and no frs-redis-* directory is left', {
  skip: clusterMode ? 'the example takes REDIS_URL (standalone)' : !(await redisServerAvailable()) ? 'needs redis-server' : false
}, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'frs-example-shutdown-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const file = join(tmp, 'rentals.sqlite')
  // No REDIS_URL: the example starts its own redis-server, under this TMPDIR.
  const app = await bootExample({ REDIS_URL: undefined, TMPDIR: tmp, DATABASE_FILE: file, ANON_RATE: '100000/minute' })
  t.teardown(() => app.stop())
  t.equal(readdirSync(tmp).filter((name) => name.startsWith('frs-redis-')).length, 1, 'its redis-server works in the temporary folder')

  // Listing 1: 130 views, so 100 are flushed on the way and 30 are pending at SIGTERM; listing 2: 7, all pending.
  const views = new Map([[1, 130], [2, 7]])
  const statuses = new Set<number>()
  for (const [id, n] of views) {
    for (let i = 0; i < n; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, n - i) }, async () => {
        const res = await fetch(`${app.origin}/api/listings/${id}`)
        await res.arrayBuffer()
        statuses.add(res.status)
      }))
    }
  }
  t.same([...statuses], [200], 'every view was served')

  t.equal(await app.stop(), 0, 'the example exits with 0')
  t.same(await viewsIn(file), views, 'the database file holds every view')
  const failures = app.logs.filter((l) => (l.level ?? 0) >= 40).map((l) => l.msg)
  t.same(failures, [], 'no warning or error was logged (such as "the last flush failed: Database closed")')
  t.same(readdirSync(tmp).filter((name) => name.startsWith('frs-redis-')), [], 'the redis-server directory was removed')
})
