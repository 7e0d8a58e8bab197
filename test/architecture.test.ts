// The layout holds: no import cycle anywhere in the shipped code; lib/ imports no web
// framework; a feature folder is reached from outside only through its index.ts; the
// package exports only its documented entries.
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))
const DOORS = ['plugins', 'express']
const FRAMEWORKS = /^(fastify|fastify-plugin|express|@fastify\/(?!error$).+)$/

interface Edge { from: string, to: string }

function sources (dir: string): string[] {
  let full: string
  try { full = join(root, dir); statSync(full) } catch { return [] }
  return readdirSync(full, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => join(dir, f))
}

/** Every import, `import type` and `export … from` of every shipped file, with relative targets resolved to .ts files. */
function graph (): { files: string[], edges: Edge[], external: Edge[] } {
  const files = ['lib', ...DOORS].flatMap(sources)
  const edges: Edge[] = []
  const external: Edge[] = []
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true)
    for (const ref of info.importedFiles) {
      if (ref.fileName.startsWith('.')) edges.push({ from: file, to: normalize(join(dirname(file), ref.fileName)).replace(/\.js$/, '.ts') })
      else external.push({ from: file, to: ref.fileName })
    }
  }
  return { files, edges, external }
}

const { files, edges, external } = graph()

t.test('the graph was read', async (t) => {
  t.ok(files.length > 40, `${files.length} files`)
  t.ok(edges.length > 100, `${edges.length} imports`)
  for (const e of edges) t.ok(files.includes(e.to), `${e.from} imports a file that exists: ${e.to}`)
})

t.test('no import cycle', async (t) => {
  const next = new Map<string, string[]>()
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to])
  const cycles = findCycles(files, next)
  t.same(cycles, [], 'no file reaches itself through its imports (type-only imports included)')
})

t.test('the cycle check finds a cycle when there is one', async (t) => {
  const next = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])
  t.same(findCycles(['a', 'b', 'c', 'd'], next), [['a', 'b', 'c', 'a']])
})

t.test('lib/ is framework-agnostic', async (t) => {
  const bad = external.filter((e) => e.from.startsWith('lib/') && FRAMEWORKS.test(e.to))
  t.same(bad, [], 'no file under lib/ imports fastify, a Fastify plugin or express')
})

t.test('features and doors reach a feature only through its index.ts', async (t) => {
  const feature = (f: string): string | undefined => /^lib\/([^/]+)\//.exec(f)?.[1]
  const bad = edges.filter((e) => {
    const target = feature(e.to)
    if (target === undefined) return false // lib/index.ts, plugins/, express/
    if (feature(e.from) === target) return false
    return !e.to.endsWith(`lib/${target}/index.ts`)
  })
  t.same(bad, [], 'every cross-feature import targets that feature\'s index.ts')
  const doorsReach = edges.filter((e) => DOORS.some((d) => e.from.startsWith(d + '/')) && e.to.startsWith('lib/'))
  t.ok(doorsReach.length > 0, `${doorsReach.length} imports from the doors into lib/ checked`)
})

t.test('the package exports only its documented entries', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown>, files: string[], scripts: Record<string, string> }
  const entries = Object.keys(pkg.exports).filter((k) => k !== './package.json').sort()
  const documented = ['.', './core', ...(files.some((f) => f.startsWith('express/')) ? ['./express'] : [])].sort()
  t.same(entries, documented)
  t.notOk(Object.keys(pkg.exports).some((k) => k.includes('*')), 'no wildcard export')
  t.ok(pkg.scripts.prepack, 'npm pack builds first')
  for (const entry of ['lib/index.ts', 'plugins/index.ts']) t.ok(files.includes(entry), `${entry} exists`)
})

function findCycles (nodes: string[], next: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const cycles: string[][] = []
  const visit = (n: string): void => {
    state.set(n, 'open')
    stack.push(n)
    for (const m of next.get(n) ?? []) {
      if (state.get(m) === 'open') cycles.push([...stack.slice(stack.indexOf(m)), m])
      else if (state.get(m) === undefined) visit(m)
    }
    stack.pop()
    state.set(n, 'done')
  }
  for (const n of [...nodes].sort()) if (state.get(n) === undefined) visit(n)
  return cycles
}
