import { createHmac } from 'node:crypto'
import { hashed, OtpUnavailableError } from '../core/index.js'
import type { HashedPart } from '../core/index.js'

/** What the OTP module logs through: a pino logger fits. Codes and tokens are never passed to it. */
export interface OtpLogger {
  debug: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
}

/**
 * HMAC-SHA256 under `secret` of `label` and `parts`, each prefixed with its byte length, so
 * that no two lists of fields give the same input (`('ab','c')` and `('a','bc')` differ).
 */
export function mac (secret: string, label: string, ...parts: string[]): string {
  const hmac = createHmac('sha256', secret)
  for (const part of [label, ...parts]) {
    const bytes = Buffer.from(part, 'utf8')
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    hmac.update(length).update(bytes)
  }
  return hmac.digest('base64url')
}

/**
 * The subject as it appears in keys: a keyed digest, so that key names reveal no email or
 * phone number, not even to someone who hashes a list of known addresses.
 */
export function subjectPart (secret: string, subject: string): HashedPart {
  return hashed(mac(secret, 'frs-otp-subject', subject))
}

/** Runs a Redis call; any failure becomes FRS_OTP_UNAVAILABLE (503): OTP fails closed, never "ok". */
export async function guard<T> (log: OtpLogger | undefined, op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    // Nothing sent to Redis holds a code or token in clear (only HMACs and SHA-256 digests),
    // so even the command arguments that ioredis attaches to errors expose neither.
    log?.warn({ err, op }, 'otp: Redis failed; failing closed')
    throw new OtpUnavailableError({ cause: err })
  }
}

/** Seconds to wait, from milliseconds that Redis reported (at least 1). */
export function retryAfterSeconds (ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000))
}
