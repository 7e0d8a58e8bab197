// One warning per interval for failures that repeat on every request (a Redis outage): the
// first is logged at once, the rest of the interval is counted, and the next line says how
// many were left out, so that an outage is a few log lines, not one per request.
import type { WarnLogger } from './circuit-breaker.js'

/** How often a repeating warning is logged at most. */
export const WARN_INTERVAL_MS = 10_000

/** A warn(obj, msg) that logs at most once per `intervalMs`, adding `suppressed` (how many were left out since the last line). */
export function throttledWarn (log: WarnLogger, intervalMs = WARN_INTERVAL_MS): (obj: object, msg: string) => void {
  let last = -Infinity
  let suppressed = 0
  return (obj, msg) => {
    const now = Date.now()
    if (now - last < intervalMs) { suppressed++; return }
    last = now
    log.warn(suppressed > 0 ? { ...obj, suppressed } : obj, msg)
    suppressed = 0
  }
}
