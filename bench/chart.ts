// Renders the benchmark reports as one SVG bar chart (req/s as a ratio to each report's
// baseline), with no dependency: the README shows bench/results/chart.svg.
import type { Report } from './harness.js'

const ROW = 22
const LABEL = 300
const BAR = 420

function escape (text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string)
}

/** One group of bars per report; each bar is a row's req/s relative to the report's baseline. */
export function renderChart (reports: Report[]): string {
  const lines: string[] = []
  let y = 30
  const max = Math.max(1, ...reports.flatMap((r) => r.rows.map((row) => row.ratio)).filter(Number.isFinite))
  for (const report of reports) {
    lines.push(`<text x="10" y="${y}" font-weight="bold">${escape(report.title)}</text>`)
    y += 8
    for (const row of report.rows) {
      const width = Number.isFinite(row.ratio) ? Math.round((row.ratio / max) * BAR) : 0
      lines.push(`<text x="20" y="${y + 15}">${escape(row.name)}</text>`)
      lines.push(`<rect x="${LABEL}" y="${y + 3}" width="${width}" height="${ROW - 6}" fill="${row.name === report.baseline ? '#999' : '#3a7bd5'}"/>`)
      lines.push(`<text x="${LABEL + width + 6}" y="${y + 15}">${row.reqPerSec} req/s (${row.ratio}×)</text>`)
      y += ROW
    }
    y += 24
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${LABEL + BAR + 180}" height="${y}" font-family="sans-serif" font-size="12">\n` +
    '<rect width="100%" height="100%" fill="white"/>\n' + lines.join('\n') + '\n</svg>\n'
}
