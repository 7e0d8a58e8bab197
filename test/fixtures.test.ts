import t from 'tap'
import { spawn } from 'node:child_process'
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

t.test('a redis-server started by a process dies when that process is killed', { skip: process.platform !== 'linux' }, async (t) => {
  const script = fileURLToPath(new URL('./fixtures/start-and-wait.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /PORT (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)))
  })
  t.equal(await portOpen(port), true, 'server up')
  child.kill('SIGKILL')
  const deadline = Date.now() + 5000
  let open = true
  while (open && Date.now() < deadline) {
    open = await portOpen(port)
    if (open) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(open, false, 'server gone after its parent was killed')
})
