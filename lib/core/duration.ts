import { InvalidDurationError, InvalidRateError } from './errors.js'

/** A duration: milliseconds as a number, or a string such as `'500ms'`, `'10s'`, `'10m'`, `'1h'`, `'1d'`. */
export type Duration = number | `${number}${DurationUnit}`
export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd' | 'w'

/** A rate: `'<count>/<window>'`, such as `'100/hour'`, `'5/15m'`, `'10/s'`. */
export type Rate = `${number}/${string}`

export interface ParsedRate {
  /** Requests (or units of cost) allowed per window. */
  limit: number
  /** Window length in milliseconds. */
  windowMs: number
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  w: 604_800_000,
  week: 604_800_000
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/
// Rates also take a bare or plural unit word as the window: '10/s', '100/hour', '5/minutes'.
const RATE_RE = /^(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)$/

/**
 * Parses a duration into whole milliseconds. `name` is the option being parsed and
 * appears in the error, so that a bad value is easy to find.
 */
export function parseDuration (value: unknown, name = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && Number.isSafeInteger(value)) return value
    throw new InvalidDurationError(name, `got the number ${value}`)
  }
  if (typeof value !== 'string') throw new InvalidDurationError(name, `got ${describe(value)}`)
  const match = DURATION_RE.exec(value.trim())
  if (match === null) throw new InvalidDurationError(name, `got ${JSON.stringify(value)}`)
  const ms = Math.round(Number(match[1]) * (UNIT_MS[match[2] as string] as number))
  if (!Number.isSafeInteger(ms)) throw new InvalidDurationError(name, `${JSON.stringify(value)} is too large`)
  return ms
}

/** Like {@link parseDuration}, but also refuses zero. */
export function parsePositiveDuration (value: unknown, name: string): number {
  const ms = parseDuration(value, name)
  if (ms === 0) throw new InvalidDurationError(name, 'it must be greater than zero')
  return ms
}

/** Parses a rate string into a limit and a window in milliseconds. */
export function parseRate (value: unknown, name = 'rate'): ParsedRate {
  if (typeof value !== 'string') throw new InvalidRateError(name, `got ${describe(value)}`)
  const match = RATE_RE.exec(value.trim().toLowerCase())
  if (match === null) throw new InvalidRateError(name, `got ${JSON.stringify(value)}`)
  const limit = Number(match[1])
  const count = match[2] === undefined ? 1 : Number(match[2])
  const word = match[3] as string
  const unit = UNIT_MS[word] ?? (word.length > 2 && word.endsWith('s') ? UNIT_MS[word.slice(0, -1)] : undefined)
  if (unit === undefined) throw new InvalidRateError(name, `unknown time unit "${word}"`)
  const windowMs = Math.round(count * unit)
  if (limit < 1 || !Number.isSafeInteger(limit)) throw new InvalidRateError(name, 'the count must be a positive integer')
  if (windowMs < 1 || !Number.isSafeInteger(windowMs)) throw new InvalidRateError(name, 'the window must be at least 1ms')
  return { limit, windowMs }
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return `a value of type ${typeof value}`
}
