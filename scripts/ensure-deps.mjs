// Installs dependencies with `npm ci` when node_modules is missing or older than
// package-lock.json, so that `npm test` and `npm run example` work on a fresh clone.
import { execSync } from 'node:child_process'
import { statSync } from 'node:fs'

function mtime (path) {
  try { return statSync(path).mtimeMs } catch { return -1 }
}

const installed = mtime('node_modules/.package-lock.json')
if (installed < 0 || installed < mtime('package-lock.json')) {
  console.error('[fastify-redis-suite] installing dependencies with npm ci ...')
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' })
}
