// The logger the Express door writes to: pino's shape (`warn(obj, msg)`), which console fits.

/** Where the suite's warnings (Redis failures, at most one line per 10 s each) and notices go. */
export interface SuiteLogger {
  warn: (obj: object, msg: string) => void
  info: (obj: object | string, msg?: string) => void
  debug: (obj: object, msg: string) => void
}

/** Warnings to `console.warn`; notices and debug lines dropped. */
export const consoleLogger: SuiteLogger = {
  warn: (obj, msg) => { console.warn(`[fastify-redis-suite] ${msg}`, obj) },
  info: () => {},
  debug: () => {}
}
