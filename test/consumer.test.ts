// What users get: packs the tarball (npm pack, which builds first), installs it into empty
// projects the way a user would, and there imports every entry point from plain JavaScript,
// serves a cached, a rate-limited and a session route over real HTTP (with the suite's own
// client and with adopted ioredis, iovalkey and ioredis 5 clients), compiles strict ESM and
// CommonJS TypeScript consumers, and runs the CommonJS one. Once with the newest Fastify 5
// that the peer range gives, once with an older Fastify 5 pinned by the consumer.
import t from 'tap'
import { execFile } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { clusterMode, freshPrefix, memoryMode, testRedis } from './fixtures/redis.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = fileURLToPath(new URL('./fixtures/consumer/', import.meta.url))
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const ours = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string, version: string, engines: { node: string }, peerDependencies: Record<string, string>, peerDependenciesMeta?: Record<string, { optional?: boolean }> }
const optionalPeer = (name: string): boolean => ours.peerDependenciesMeta?.[name]?.optional === true
const OLDER_FASTIFY = '5.2.2'

interface Seen {
  kind: string
  fastify: string
  registerError?: { code: string, message: string }
  cache: [string, string, number]
  limited: number[]
  session: { login: number, cookie: boolean, me: string | null }
  tools: { value: unknown, duration: number, hasErrors: string, pong: string }
  deepImport: string
}

t.test('the packed tarball, installed into a consumer project', { skip: clusterMode || memoryMode ? 'packaging does not depend on the Redis engine; it runs with the standalone suite' : false, timeout: 600_000 }, async (t) => {
  const redis = await testRedis()
  const work = mkdtempSync(join(tmpdir(), 'frs-consumer-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))

  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, maxBuffer: 16 << 20 })
  const tarball = join(work, stdout.trim().split('\n').pop() as string)
  t.ok(existsSync(tarball), `npm pack made ${tarball}`)
  const { stdout: listing } = await run('tar', ['-tzf', tarball])
  const files = listing.trim().split('\n')
  t.ok(files.includes('package/dist/plugins/index.js') && files.includes('package/dist/lib/index.d.ts'), 'the build is in the tarball (prepack ran)')
  t.notOk(files.some((f) => f.endsWith('.map')), 'no source maps without their sources')
  t.notOk(files.some((f) => f.startsWith('package/test/') || f.startsWith('package/bench/') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))), 'no tests, benchmarks or TypeScript sources')

  for (const variant of [
    { name: 'newest Fastify 5 from the peer range', deps: { iovalkey: '^0.4.0', ioredis5: 'npm:ioredis@^5' }, clients: ['own', 'ioredis', 'iovalkey', 'ioredis5', 'memory'] },
    { name: `Fastify ${OLDER_FASTIFY} pinned by the consumer`, deps: { fastify: OLDER_FASTIFY }, clients: ['own'] }
  ]) {
    await t.test(variant.name, async (t) => {
      const dir = mkdtempSync(join(work, 'app-'))
      cpSync(fixture, dir, { recursive: true })
      writeFileSync(join(dir, 'package.json'), JSON.stringify({
        name: 'consumer',
        private: true,
        type: 'module',
        dependencies: { [ours.name]: `file:${tarball}`, ...variant.deps },
        // ioredis's own .d.ts imports redis-errors, which ships no types
        devDependencies: { typescript: '~5.9', '@types/node': '^20.19.0', '@types/redis-errors': '^1.2.3' }
      }, null, 2))

      const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, maxBuffer: 16 << 20 })
      const warned = [...install.stderr.matchAll(/EBADENGINE[^\n]*\n[^\n]*package: '([^']+)'/g)].map((m) => m[1] as string)
      const own = dependencyTree(dir, ours.name)
      t.same(warned.filter((p) => own.has(p)), [], `no engine warning from what ${ours.name} installs on Node ${process.versions.node} (${own.size} packages checked)`)
      if (warned.length > 0) t.comment(`engine warnings from the consumer's own Fastify: ${warned.join(', ')}`)
      const fastifyVersion = (JSON.parse(readFileSync(join(dir, 'node_modules', 'fastify', 'package.json'), 'utf8')) as { version: string }).version
      t.notOk(existsSync(join(dir, 'node_modules', ours.name, 'node_modules', 'fastify')), `one copy of fastify (${fastifyVersion}), not a nested second one`)
      for (const peer of Object.keys(ours.peerDependencies).filter((p) => !optionalPeer(p))) t.ok(existsSync(join(dir, 'node_modules', peer, 'package.json')), `peer ${peer} is installed once, at the top`)
      t.notOk(existsSync(join(dir, 'node_modules', 'express')), 'express, an optional peer, is not installed')
      const expressEntry = await run(process.execPath, ['--input-type=module', '-e', `const m = await import('${ours.name}/express'); console.log(typeof m.redisSuite)`], { cwd: dir })
      t.equal(expressEntry.stdout.trim(), 'function', 'the Express entry loads without express installed (its peers are loaded only when used)')

      for (const kind of variant.clients) {
        // 'memory': the suite's own client on the memory engine (memory://), no server
        const env = kind === 'memory' ? { REDIS_URL: 'memory://', CLIENT: 'own' } : { REDIS_URL: redis.connection.url, CLIENT: kind }
        const served = await run(process.execPath, ['serve.mjs'], { cwd: dir, env: { ...process.env, ...env, PREFIX: freshPrefix() } })
        const seen = JSON.parse(served.stdout) as Seen
        t.equal(seen.registerError, undefined, `${kind}: the suite registers`)
        t.equal(seen.fastify, fastifyVersion)
        t.same(seen.cache, ['MISS', 'HIT', 1], `${kind}: cached route computed once`)
        t.same(seen.limited, [200, 200, 429], `${kind}: the third request of 2/minute is refused`)
        t.same(seen.session, { login: 200, cookie: true, me: 'u1' }, `${kind}: the session carries the login`)
        t.same(seen.tools, { value: { at: 1 }, duration: 120_000, hasErrors: 'function', pong: 'PONG' }, `${kind}: fastify-redis-suite/core works`)
        t.equal(seen.deepImport, 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'nothing under lib/ is importable by accident')
      }

      const compiled = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir }).then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
      t.equal(compiled, '', 'strict ESM and CommonJS TypeScript consumers compile against the published types')
      const cjs = await run(process.execPath, [join('out', 'cjs', 'consumer.cjs')], { cwd: dir, env: { ...process.env, REDIS_URL: redis.connection.url, PREFIX: freshPrefix() } })
      const result = JSON.parse(cjs.stdout) as { statuses: number[], key: string, ms: number }
      t.same(result.statuses, [200, 429], 'the CommonJS consumer runs (require of the ESM package)')
      t.equal(result.ms, 1000)
      t.match(readFileSync(join(dir, 'out', 'cjs', 'consumer.cjs'), 'utf8'), /require\("fastify-redis-suite"\)/, 'it was compiled to require()')
    })
  }
})

/** name@version of every package that `name` brings in through its dependencies (its peers' own trees left out: the consumer chooses those). */
function dependencyTree (dir: string, name: string): Set<string> {
  const seen = new Set<string>()
  const visit = (pkgDir: string, peersToo: boolean): void => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { name: string, version: string, dependencies?: Record<string, string>, peerDependencies?: Record<string, string> }
    const id = `${pkg.name}@${pkg.version}`
    if (seen.has(id)) return
    seen.add(id)
    const deps = Object.keys(pkg.dependencies ?? {})
    if (peersToo) deps.push(...Object.keys(pkg.peerDependencies ?? {}).filter((p) => p !== 'fastify' && !optionalPeer(p)))
    for (const dep of deps) {
      const found = resolvePackage(pkgDir, dep)
      if (found !== undefined) visit(found, false)
    }
  }
  visit(join(dir, 'node_modules', name), true)
  return seen
}

/** Node's lookup: node_modules/<dep> in the package's folder, then in each parent. */
function resolvePackage (from: string, dep: string): string | undefined {
  for (let d = from; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', dep)
    if (existsSync(join(candidate, 'package.json'))) return candidate
    if (dirname(d) === d) return undefined
  }
}
