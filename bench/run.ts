// `npm run bench`: every benchmark of the suite in one run, one process tree. Each bench
// module exports run(); servers run in their own processes (bench/harness.ts).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Report } from './harness.js'
import { renderChart } from './chart.js'

const here = dirname(fileURLToPath(import.meta.url))
const ALL = ['rate-limit', 'session', 'response-cache', 'cache', 'otp', 'express']
// `--chart` redraws the chart from the saved results; names run only those benchmarks.
const chartOnly = process.argv.includes('--chart')
const only = process.argv.slice(2).filter((a) => a !== '--chart')
const benches = chartOnly ? [] : ALL.filter((name) => only.length === 0 || only.includes(name))
const results = join(here, '..', '..', 'bench', 'results')

const reports: Report[] = []
const started = Date.now()
if (chartOnly) {
  for (const name of ALL) {
    const file = join(results, `${name}.json`)
    if (existsSync(file)) reports.push(JSON.parse(readFileSync(file, 'utf8')) as Report)
  }
}
for (const name of benches) {
  const file = join(here, `${name}.js`)
  if (!existsSync(file)) {
    console.log(`(skipping ${name}: no bench/${name}.ts)`)
    continue
  }
  const mod = await import(file) as { run: () => Promise<Report | Report[]> }
  const result = await mod.run()
  reports.push(...[result].flat())
}
const svg = renderChart(reports)
const out = join(results, 'chart.svg')
writeFileSync(out, svg)
console.log(`\n${reports.length} reports in ${Math.round((Date.now() - started) / 1000)} s; chart: bench/results/chart.svg`)
