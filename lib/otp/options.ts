import { checkKeys, InvalidOptionError, optionKeys, parseDuration, parsePositiveDuration, REGISTER_KEYS } from '../core/index.js'
import type { Duration } from '../core/index.js'

export interface OtpOptions {
  /**
   * Server secret (at least 32 characters) that keys the HMAC of every code and of subjects in
   * keys. Required: it may come straight from `process.env`, and `undefined` stops startup with
   * an error naming it. @default none (required)
   */
  secret: string | undefined
  /** Named connection of the core plugin. @default the default connection */
  connection?: string
  /** Key namespace, to keep several apps apart on one Redis. @default 'default' */
  namespace?: string
  /** Digits of a code, 4 to 10. @default 6 */
  codeLength?: number
  /** How long a code is valid; at most 10 minutes. @default '10m' */
  codeTtl?: Duration
  /** Wrong guesses one code (and the resends that replace it) allows, 1 to 20. @default 5 */
  maxAttempts?: number
  /** Minimum time between two codes for one purpose and subject; 0 for none. @default '60s' */
  resendCooldown?: Duration
  /** Codes one subject may receive in 24 hours, over every purpose. @default 10 */
  dailyCap?: number
  /** Consecutive wrong codes that lock a subject out (NIST SP 800-63B: at most 100). @default 100 */
  lockAfter?: number
  /** How long consecutive failures are remembered after the last one, and so how long a lock lasts. @default '1d' */
  lockFor?: Duration
  /** Default lifetime of a link token. @default '1h' */
  tokenTtl?: Duration
  /** Longest lifetime a link token may ask for. @default '7d' */
  maxTokenTtl?: Duration
}

export interface ResolvedOtpOptions {
  secret: string
  connection: string | undefined
  namespace: string
  codeLength: number
  codeTtl: number
  maxAttempts: number
  resendCooldown: number
  dailyCap: number
  lockAfter: number
  lockFor: number
  tokenTtl: number
  maxTokenTtl: number
}

const OTP_KEYS = [...REGISTER_KEYS, ...optionKeys<OtpOptions>({
  secret: true, connection: true, namespace: true, codeLength: true, codeTtl: true, maxAttempts: true, resendCooldown: true, dailyCap: true, lockAfter: true, lockFor: true, tokenTtl: true, maxTokenTtl: true
})]

/** NIST SP 800-63B and OWASP: a one-time code is short-lived. */
export const MAX_CODE_TTL = 600_000

/** Validates the plugin's options, naming the option in any error, and fills defaults. */
export function resolveOtpOptions (opts: OtpOptions): Readonly<ResolvedOtpOptions> {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError('secret', 'the otp plugin needs options with a secret')
  checkKeys(opts, OTP_KEYS, 'otp')
  const { secret } = opts
  if (secret === undefined) throw new InvalidOptionError('secret', 'it is undefined (an unset environment variable such as OTP_SECRET?); a string of at least 32 characters is required')
  if (typeof secret !== 'string' || secret.length < 32) {
    throw new InvalidOptionError('secret', 'a string of at least 32 characters is required (e.g. 32 random bytes in base64)')
  }
  if (opts.connection !== undefined && typeof opts.connection !== 'string') throw new InvalidOptionError('connection', 'expected a connection name')
  if (opts.namespace !== undefined && typeof opts.namespace !== 'string') throw new InvalidOptionError('namespace', 'expected a string')
  const resolved = {
    secret,
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    codeLength: checkCodeLength(opts.codeLength ?? 6, 'codeLength'),
    codeTtl: checkCodeTtl(opts.codeTtl ?? '10m', 'codeTtl'),
    maxAttempts: checkInteger(opts.maxAttempts ?? 5, 'maxAttempts', 1, 20),
    resendCooldown: parseDuration(opts.resendCooldown ?? '60s', 'resendCooldown'),
    dailyCap: checkInteger(opts.dailyCap ?? 10, 'dailyCap', 1, 10_000),
    lockAfter: checkInteger(opts.lockAfter ?? 100, 'lockAfter', 1, 100),
    lockFor: parsePositiveDuration(opts.lockFor ?? '1d', 'lockFor'),
    tokenTtl: parsePositiveDuration(opts.tokenTtl ?? '1h', 'tokenTtl'),
    maxTokenTtl: parsePositiveDuration(opts.maxTokenTtl ?? '7d', 'maxTokenTtl')
  }
  if (resolved.tokenTtl > resolved.maxTokenTtl) throw new InvalidOptionError('tokenTtl', 'it is longer than maxTokenTtl')
  return Object.freeze(resolved)
}

/** True for an integer from `min` to `max`: the one test behind option and per-call integers. */
export function isIntegerIn (value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
}

export function checkInteger (value: unknown, name: string, min: number, max: number): number {
  if (!isIntegerIn(value, min, max)) {
    throw new InvalidOptionError(name, `expected an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

export function checkCodeLength (value: unknown, name: string): number {
  return checkInteger(value, name, 4, 10)
}

export function checkCodeTtl (value: unknown, name: string): number {
  const ms = parsePositiveDuration(value, name)
  if (ms > MAX_CODE_TTL) throw new InvalidOptionError(name, `a one-time code lives at most 10 minutes, got ${ms}ms`)
  return ms
}
