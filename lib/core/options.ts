// The one check behind every options object and route config of the suite: a key that no
// option is named after stops startup, naming the full path of the key and the closest name,
// so that a typo (`ttl` as `tll`) never leaves a setting silently unapplied.
import { InvalidOptionError } from './errors.js'

/**
 * The option names of `T`, listed once: the compiler refuses a list that misses a key of `T`
 * or names one it does not have, so the runtime check cannot drift from the types.
 */
export function optionKeys<T> (keys: { readonly [K in keyof Required<T>]: true }): readonly string[] {
  return Object.freeze(Object.keys(keys))
}

/** The keys Fastify's `register` takes besides a plugin's own options; every plugin accepts them. */
export const REGISTER_KEYS: readonly string[] = Object.freeze(['prefix', 'logLevel', 'logSerializers'])

/** `path.key`, or `key` at the root. */
export function optionPath (path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

/** How an error names an option of one route: `GET /users config.cache`. HEAD routes count as their GET. */
export function routeOptionPath (method: string | readonly string[], url: string, option: string): string {
  const methods = [...new Set([method].flat().map((m) => (m === 'HEAD' ? 'GET' : m)))]
  return `${methods.join(',')} ${url} ${option}`
}

/**
 * Refuses `value` unless it is a plain object whose own keys are all in `known` (keys whose
 * value is `undefined` count as absent). `path` names the object in errors: `session.cookie`
 * makes `session.cookie.secrue`. Keys such as `__proto__` or `constructor` given as own keys
 * are unknown like any other.
 */
export function checkKeys (value: unknown, known: readonly string[], path: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidOptionError(path, 'expected an options object')
  for (const key of Object.keys(value)) {
    if (known.includes(key) || (value as Record<string, unknown>)[key] === undefined) continue
    const near = closestName(key, known)
    throw new InvalidOptionError(optionPath(path, key), near === undefined
      ? `unknown option; the known ones are ${known.join(', ')}`
      : `unknown option, did you mean \`${near}\`?`)
  }
}

/**
 * The name in `known` closest to `name` by edit distance (optimal string alignment: a swap of
 * two neighbours is one edit), ignoring case; undefined when none is close enough to be a typo.
 */
export function closestName (name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase()
  const limit = Math.max(1, Math.floor(name.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const d = editDistance(lower, candidate.toLowerCase())
    if (d < bestDistance) { best = candidate; bestDistance = d }
  }
  return bestDistance <= limit ? best : undefined
}

function editDistance (a: string, b: string): number {
  // rows[i][j]: distance between the first i characters of a and the first j of b
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 0; j <= b.length; j++) (rows[0] as number[])[j] = j
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[]
    const prev = rows[i - 1] as number[]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2] as number[])[j - 2] as number + 1)
      row[j] = d
    }
  }
  return (rows[a.length] as number[])[b.length] as number
}
