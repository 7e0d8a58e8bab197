import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { fileURLToPath } from 'node:url'
import { assertKeysHaveTtl, freshPrefix, rawClient, scanKeys, testRedis } from './fixtures/redis.js'

const redis = await testRedis()

t.test('assertKeysHaveTtl catches a key without a TTL and honours exceptions', async (t) => {
  const client = rawClient(redis)
  t.teardown(() => client.disconnect())
  const prefix = freshPrefix()
  await client.set(`${prefix}:a`, '1', 'PX', 10_000)
  await client.set(`${prefix}:b`, '1')
  t.same(await scanKeys(client, prefix), [`${prefix}:a`, `${prefix}:b`])

  const seen: unknown[] = []
  const probe = { same: (actual: unknown) => { seen.push(actual) } }
  await assertKeysHaveTtl(probe, client, prefix)
  t.same(seen, [[`${prefix}:b`]], 'the persistent key is reported')
  await assertKeysHaveTtl(t, client, prefix, (k) => k.endsWith(':b'))
  await client.del(`${prefix}:b`)
})

function portOpen (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Polls until nothing listens on `port` (a killed process lets go of its port a moment later). */
async function portClosed (port: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (await portOpen(port)) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

const startAndWait = fileURLToPath(new URL('./fixtures/start-and-wait.ts', import.meta.url))

/** Runs fixtures/start-and-wait.ts in a child process; resolves once its server is up. */
function startChild (args: string[] = []) {
  const child = spawn(process.execPath, [...process.execArgv, startAndWait, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  const started = new Promise<{ port: number, dir: string }>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /PORT (\d+) DIR (\S+)\n/.exec(out)
      if (m) resolve({ port: Number(m[1]), dir: m[2] as string })
    })
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)))
  })
  return { child, started, exited }
}

t.test('a redis-server directory is removed when the process that started it exits', async (t) => {
  const { started, exited } = startChild(['exit'])
  const { port, dir } = await started
  t.match(dir, /frs-redis-/)
  t.equal(await exited, 0)
  t.equal(existsSync(dir), false, `${dir} is gone`)
  t.ok(await portClosed(port), 'and so is the server')
})

t.test('a redis-server started by a process dies when that process is killed', { skip: process.platform !== 'linux' }, async (t) => {
  const { child, started } = startChild()
  const { port, dir } = await started
  // Nothing can clean up after a SIGKILL: this test removes the directory itself.
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal(await portOpen(port), true, 'server up')
  child.kill('SIGKILL')
  t.ok(await portClosed(port), 'server gone after its parent was killed')
})
