#!/usr/bin/env node
// Extracts every ```ts block of README.md and docs/*.md into its own module, so that CI can
// compile the documentation against the built package (test/docs-examples.test.ts).
//
//   node scripts/extract-examples.mjs <out-dir> [file.md …]
//
// Writes <out-dir>/<nn>-<source>-L<line>.ts per block and <out-dir>/manifest.json, a list of
// { file, source, line, preludeLines }: `line` is the line of the block's first code line in
// `source`, and the first `preludeLines` lines of `file` are the block's hidden prelude.
//
// A block that needs context that the reader does not (an `app`, a `db`) takes it from an HTML
// comment just before it, which Markdown does not render:
//
//   <!-- example-prelude: import Fastify from 'fastify'; const app = Fastify() -->
//
// The comment may span lines; only blank lines may stand between it and the block. Each block
// is an ES module (top-level await works) and is compiled on its own, apart from the others.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The Markdown files whose examples are compiled: the README and every page of docs/. */
export function documentationFiles () {
  const docs = join(root, 'docs')
  let pages = []
  try {
    pages = readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => join(docs, f))
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  return [join(root, 'README.md'), ...pages]
}

const PRELUDE = /<!--\s*example-prelude:([\s\S]*?)-->\s*$/

/** The ```ts blocks of one Markdown text: { line, code, prelude }. */
export function extractBlocks (text) {
  const lines = text.split(/\r?\n/)
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(ts|typescript)\s*$/.exec(lines[i])
    if (open === null) {
      // skip other fenced blocks whole, so that a ```ts inside one is not taken for a block
      const other = /^(\s*)(`{3,}|~{3,})/.exec(lines[i])
      if (other !== null) {
        const fence = other[2]
        for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++);
      }
      continue
    }
    const [, indent, fence] = open
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end].trimStart().startsWith(fence)) end++
    if (end === lines.length) throw new Error(`unclosed code block opened on line ${i + 1}`)
    const code = lines.slice(start, end).map((l) => l.startsWith(indent) ? l.slice(indent.length) : l)
    blocks.push({ line: start + 1, code, prelude: preludeBefore(lines, i) })
    i = end
  }
  return blocks
}

/** The prelude comment ending just before line `open` (blank lines allowed between), or []. */
function preludeBefore (lines, open) {
  let j = open - 1
  while (j >= 0 && lines[j].trim() === '') j--
  if (j < 0 || !lines[j].trimEnd().endsWith('-->')) return []
  let from = j
  while (from >= 0 && !lines[from].includes('<!--')) from--
  if (from < 0) return []
  const match = PRELUDE.exec(lines.slice(from, j + 1).join('\n'))
  if (match === null) return []
  return match[1].split('\n').map((l) => l.trim()).filter((l) => l !== '')
}

/** Writes one module per block into `outDir`; returns the manifest. */
export function writeExamples (outDir, files = documentationFiles()) {
  mkdirSync(outDir, { recursive: true })
  const manifest = []
  for (const path of files) {
    const source = relative(root, path).split('\\').join('/')
    for (const block of extractBlocks(readFileSync(path, 'utf8'))) {
      const name = `${String(manifest.length + 1).padStart(3, '0')}-${basename(path, '.md').toLowerCase()}-L${block.line}.ts`
      // `export {}` keeps a block without imports a module, with its own scope
      const body = [...block.prelude, ...block.code, 'export {}', '']
      writeFileSync(join(outDir, name), body.join('\n'))
      manifest.push({ file: name, source, line: block.line, preludeLines: block.prelude.length })
    }
  }
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
  return manifest
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [outDir, ...files] = process.argv.slice(2)
  if (outDir === undefined) {
    console.error('usage: node scripts/extract-examples.mjs <out-dir> [file.md …]')
    process.exit(2)
  }
  const manifest = writeExamples(resolve(outDir), files.length > 0 ? files.map((f) => resolve(f)) : undefined)
  console.log(`${manifest.length} TypeScript blocks written to ${outDir}`)
}
