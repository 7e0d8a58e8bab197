// The documentation compiles: every ```ts block of README.md and docs/*.md, extracted by
// scripts/extract-examples.mjs (with its hidden prelude, if any), is type-checked in strict
// ESM TypeScript against the packed tarball, installed the way a user installs it. A block
// that does not compile fails with its Markdown file and line.
import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { clusterMode, memoryMode } from './fixtures/redis.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const ours = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string }

interface Block { file: string, source: string, line: number, preludeLines: number }

t.test('every TypeScript block of the documentation compiles against the package', { skip: clusterMode || memoryMode ? 'the documentation does not depend on the Redis engine; it is compiled with the standalone suite' : false, timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'frs-docs-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))

  // The package as `npm pack` makes it, built into a folder of its own rather than by prepack
  // into dist/, which test/consumer.test.ts may be rebuilding at the same moment.
  const pkg = join(work, 'package')
  mkdirSync(pkg)
  copyFileSync(join(root, 'package.json'), join(pkg, 'package.json'))
  await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { cwd: root, maxBuffer: 16 << 20 })
  const { stdout } = await run('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', work], { cwd: pkg, maxBuffer: 16 << 20 })
  const tarball = join(work, stdout.trim().split('\n').pop() as string)
  const project = join(work, 'project')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({
    name: 'docs-examples',
    private: true,
    type: 'module',
    // the peers (fastify, ioredis, @fastify/session) come with the tarball's peer ranges; the
    // optional ones that the Express and metrics examples use (express, express-session, prom-client) are added
    dependencies: { [ours.name]: `file:${tarball}` },
    // ioredis's own .d.ts imports redis-errors, which ships no types
    devDependencies: { typescript: '~5.9', '@types/node': '^20.19.0', '@types/redis-errors': '^1.2.3', express: '^5.0.0', '@types/express': '^5.0.0', 'express-session': '^1.18.0', '@types/express-session': '^1.18.0', 'prom-client': '^15.1.0' }
  }, null, 2))
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'],
      strict: true,
      skipLibCheck: true,
      noEmit: true
    },
    include: ['examples/*.ts']
  }, null, 2))
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: project, maxBuffer: 16 << 20 })

  await run(process.execPath, [join(root, 'scripts', 'extract-examples.mjs'), join(project, 'examples')], { cwd: root })
  const blocks = JSON.parse(readFileSync(join(project, 'examples', 'manifest.json'), 'utf8')) as Block[]
  t.ok(blocks.length > 0, `${blocks.length} blocks extracted`)
  t.ok(blocks.some((b) => b.source === 'README.md') && blocks.some((b) => b.source.startsWith('docs/')), 'from the README and from docs/')

  const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc')
  const output = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: project, maxBuffer: 16 << 20 })
    .then(() => '', (err: { stdout?: string, message: string }) => err.stdout ?? err.message)

  // tsc's lines: examples/012-readme-L140.ts(3,7): error TS2304: Cannot find name 'db'.
  const byFile = new Map<string, string[]>()
  const unplaced: string[] = []
  let last: string[] | undefined
  for (const line of output.split('\n')) {
    const m = /^examples[\\/]([^(]+)\((\d+),(\d+)\): (error TS\d+: .*)$/.exec(line)
    if (m !== null) {
      const block = blocks.find((b) => b.file === m[1])
      if (block === undefined) { unplaced.push(line); last = unplaced; continue }
      const at = Number(m[2])
      const where = at > block.preludeLines ? `${block.source}:${block.line + at - block.preludeLines - 1}` : `${block.source}:${block.line - 1} (its prelude)`
      const list = byFile.get(block.file) ?? []
      list.push(`${where}:${m[3]} ${m[4]}`)
      byFile.set(block.file, list)
      last = list
    } else if (line.startsWith(' ') && last !== undefined) {
      last[last.length - 1] += `\n${line}` // a message's continuation lines
    } else if (line.trim() !== '') {
      unplaced.push(line)
      last = unplaced
    }
  }
  for (const block of blocks) t.same(byFile.get(block.file) ?? [], [], `${block.source}:${block.line} compiles`)
  t.same(unplaced, [], 'tsc reports nothing outside the blocks')
})
