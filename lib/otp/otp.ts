import { randomInt } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { Duration, Keyspace, OtpEvent } from '../core/index.js'
import { channels, defineScripts, OtpRateLimitedError, throttledWarn, timedCall } from '../core/index.js'
import { guard, mac, retryAfterSeconds, subjectPart } from './common.js'
import type { OtpLogger } from './common.js'
import { checkCode, checkInteger, checkPurpose, checkSubject, checkTtl, fields } from './input.js'
import { MAX_CODE_TTL } from './options.js'
import type { ResolvedOtpOptions } from './options.js'
import { OtpTokens } from './tokens.js'
import type { CreateTokenInput, TokenRecord } from './tokens.js'
import { otpScripts } from './scripts.js'

export interface IssueInput {
  /** What the code is for, e.g. `'login'`, `'verify-phone'`; a code verifies only for its purpose. */
  purpose: string
  /** Who the code is for (user id, email, phone), normalized by the caller. */
  subject: string
  /** Digits, 4 to 10. @default the plugin's codeLength (6) */
  length?: number
  /** Lifetime, at most 10 minutes. @default the plugin's codeTtl ('10m') */
  ttl?: Duration
  /** Wrong guesses allowed. @default the plugin's maxAttempts (5) */
  maxAttempts?: number
}

export interface VerifyInput { purpose: string, subject: string, code: unknown }

export type VerifyResult =
  | { status: 'ok' }
  /** Wrong code; `attemptsLeft` 0 means the code is gone and a new one is needed. */
  | { status: 'invalid', attemptsLeft: number }
  /** No code for this purpose and subject: expired, used, replaced by a newer one or never issued. */
  | { status: 'expired' }
  /** Too many consecutive failures: the subject is locked out for `retryAfter` seconds. */
  | { status: 'locked', retryAfter: number }

/** Why `issue` refused: inside the resend cooldown, past the daily cap, or the subject is locked out. */
export type OtpRateLimitReason = 'cooldown' | 'daily-cap' | 'locked'

/** What `issue` throws when it refuses: FRS_OTP_RATE_LIMITED, status 429. */
export type OtpRateLimited = InstanceType<typeof OtpRateLimitedError> & { retryAfter: number, reason: OtpRateLimitReason }

const DAY = 86_400_000

/**
 * One-time codes and one-time link tokens on Redis. Codes are stored only as an HMAC of
 * (purpose, subject, code) under the server secret, and every key of one subject shares one
 * hash tag, so that issue and verify are each one atomic script (Cluster too).
 */
export class Otp {
  readonly #client: Redis | Cluster
  readonly #keys: Keyspace
  readonly #options: Readonly<ResolvedOtpOptions>
  readonly #log: OtpLogger | undefined
  readonly #tokens: OtpTokens

  constructor (client: Redis | Cluster, keys: Keyspace, options: Readonly<ResolvedOtpOptions>, log?: OtpLogger) {
    this.#client = client
    defineScripts(client, otpScripts)
    this.#keys = keys
    this.#options = options
    // Redis failures repeat on every request during an outage: one warning per 10 s.
    this.#log = log === undefined ? undefined : { debug: (obj, msg) => log.debug(obj, msg), warn: throttledWarn(log) }
    this.#tokens = new OtpTokens(client, keys, options, this.#log)
  }

  /**
   * Issues a code for `purpose` and `subject`, replacing the previous one (whose spent attempts
   * carry over). Throws FRS_OTP_RATE_LIMITED (429, `retryAfter` seconds) inside the resend
   * cooldown, past the daily cap, or while the subject is locked out; FRS_OTP_INVALID_INPUT
   * (400, before Redis) for a malformed purpose, subject, length, ttl or maxAttempts.
   */
  async issue (input: IssueInput): Promise<{ code: string, expiresAt: Date }> {
    const i = fields(input)
    const purpose = checkPurpose(i.purpose)
    const subject = checkSubject(i.subject)
    const o = this.#options
    const length = i.length === undefined ? o.codeLength : checkInteger(i.length, 'length', 4, 10)
    const ttl = i.ttl === undefined ? o.codeTtl : checkTtl(i.ttl, MAX_CODE_TTL)
    const maxAttempts = i.maxAttempts === undefined ? o.maxAttempts : checkInteger(i.maxAttempts, 'maxAttempts', 1, 20)
    const code = String(randomInt(0, 10 ** length)).padStart(length, '0')
    const k = this.#subjectKeys(purpose, subject)
    const [status, ms] = await this.#call('issue', purpose, () => this.#client.frsOtpIssue(
      k.code, k.fails, k.cooldown, k.day, this.#hmac(purpose, subject, code),
      ttl, maxAttempts, o.resendCooldown, o.dailyCap, DAY, o.lockAfter))
    if (channels.otp.hasSubscribers) this.#publish('issue', purpose, status === 'ok' ? 'issued' : status as OtpRateLimitReason)
    if (status !== 'ok') {
      const retryAfter = retryAfterSeconds(ms)
      const err: OtpRateLimited = Object.assign(new OtpRateLimitedError(retryAfter), { retryAfter, reason: status as OtpRateLimitReason })
      this.#log?.debug({ purpose, reason: status }, 'otp: code refused')
      throw err
    }
    this.#log?.debug({ purpose, ttl }, 'otp: code issued')
    return { code, expiresAt: new Date(ms + ttl) }
  }

  /**
   * Checks a code in one atomic step: counts the attempt, and deletes the code on success or when
   * attempts run out. A code that is not a string of 4 to 10 digits can match nothing: it throws
   * FRS_OTP_INVALID_INPUT (400) before Redis and costs no attempt, like a malformed purpose or subject.
   */
  async verify (input: VerifyInput): Promise<VerifyResult> {
    const i = fields(input)
    const purpose = checkPurpose(i.purpose)
    const subject = checkSubject(i.subject)
    const code = checkCode(i.code)
    const k = this.#subjectKeys(purpose, subject)
    const [status, n] = await this.#call('verify', purpose, () => this.#client.frsOtpVerify(
      k.code, k.fails, this.#hmac(purpose, subject, code), this.#options.lockAfter, this.#options.lockFor))
    this.#log?.debug({ purpose, status }, 'otp: code verified')
    if (channels.otp.hasSubscribers) this.#publish('verify', purpose, status === 'ok' || status === 'invalid' || status === 'locked' ? status : 'expired')
    switch (status) {
      case 'ok': return { status }
      case 'invalid': return { status, attemptsLeft: n }
      case 'locked': return { status, retryAfter: retryAfterSeconds(n) }
      default: return { status: 'expired' }
    }
  }

  /** Creates a one-time link token: 32 random bytes in base64url, stored only as its SHA-256. */
  createToken (input: CreateTokenInput): Promise<{ token: string, expiresAt: Date }> {
    return this.#tokens.create(input)
  }

  /** Uses a token up; exactly one of any number of concurrent callers gets `{ subject, data }`. A malformed token throws FRS_OTP_INVALID_INPUT (400). */
  consumeToken<T = unknown> (token: unknown, opts: { purpose: string }): Promise<TokenRecord<T> | null> {
    return this.#tokens.consume<T>(token, opts)
  }

  /** Reads a token without using it up. A malformed token throws FRS_OTP_INVALID_INPUT (400). */
  peekToken<T = unknown> (token: unknown, opts: { purpose: string }): Promise<TokenRecord<T> | null> {
    return this.#tokens.peek<T>(token, opts)
  }

  /** Invalidates every outstanding token of this purpose and subject. */
  revokeAll (opts: { subject: string, purpose: string }): Promise<void> {
    return this.#tokens.revokeAll(opts)
  }

  // A Redis call of issue or verify: timed, failing closed (FRS_OTP_UNAVAILABLE), its failure published.
  #call<T> (operation: OtpEvent['operation'], purpose: string, fn: () => Promise<T>): Promise<T> {
    const call = guard(this.#log, operation, () => timedCall(this.#client, 'otp', fn))
    if (!channels.otp.hasSubscribers) return call
    return call.catch((err: unknown) => {
      this.#publish(operation, purpose, 'error')
      throw err
    })
  }

  #publish (operation: OtpEvent['operation'], purpose: string, result: OtpEvent['result']): void {
    channels.otp.publish({ prefix: this.#keys.prefix, operation, purpose, result })
  }

  #hmac (purpose: string, subject: string, code: string): string {
    return mac(this.#options.secret, 'frs-otp-code', purpose, subject, code)
  }

  #subjectKeys (purpose: string, subject: string): { code: string, fails: string, cooldown: string, day: string } {
    const tag = [subjectPart(this.#options.secret, subject)]
    return {
      code: this.#keys.taggedKey(tag, 'code', purpose),
      fails: this.#keys.taggedKey(tag, 'fails'),
      cooldown: this.#keys.taggedKey(tag, 'cooldown', purpose),
      day: this.#keys.taggedKey(tag, 'day')
    }
  }
}
