// `npm run bench`: every benchmark of the suite in one run, one process tree. Each bench
// module exports run(); servers run in their own processes (bench/harness.ts).
import { existsSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Report } from './harness.js'
import { renderChart } from './chart.js'

const here = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const benches = ['rate-limit', 'session', 'response-cache', 'cache', 'otp'].filter((name) => only.length === 0 || only.includes(name))

const reports: Report[] = []
const started = Date.now()
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
const out = join(here, '..', '..', 'bench', 'results', 'chart.svg')
writeFileSync(out, svg)
console.log(`\n${reports.length} reports in ${Math.round((Date.now() - started) / 1000)} s; chart: bench/results/chart.svg`)
