import { OtpInvalidInputError, parsePositiveDuration } from '../core/index.js'
import { isIntegerIn, MAX_CODE_TTL } from './options.js'

// The per-call inputs of issue, verify and the token calls. Any of them may come from a
// request, so a malformed one is the caller's fault: FRS_OTP_INVALID_INPUT (400), naming the
// field and never quoting the value (it may be a code or a token with a typo). All of it is
// checked before Redis is asked anything, so a refused call changes no count.

/** What the calls throw for a malformed input: FRS_OTP_INVALID_INPUT, status 400; `field` names it. */
export type OtpInvalidInput = InstanceType<typeof OtpInvalidInputError> & { field: string }

export function invalidInput (field: string, why: string): OtpInvalidInput {
  return Object.assign(new OtpInvalidInputError(field, why), { field })
}

/** The input object, or an empty one for `null`, `undefined` or a primitive (every field then fails its check). */
export function fields<T extends object> (input: T | null | undefined): Partial<T> {
  return input !== null && typeof input === 'object' ? input : {}
}

const PURPOSE = /^[A-Za-z0-9_.-]{1,64}$/
export const MAX_SUBJECT = 1024
// A lone surrogate: UTF-8 encodes every one of them as U+FFFD, so '\ud800' and '\ufffd'
// would be one subject (same keys, same HMAC). Refused instead.
const LONE_SURROGATE = /\p{Cs}/u
const CODE = /^[0-9]{4,10}$/
// A token is 32 random bytes in base64url: 43 characters, 256 bits.
const TOKEN = /^[A-Za-z0-9_-]{43}$/
export const MAX_DATA = 65_536

/** A purpose names what a code or token is for (`'login'`, `'password-reset'`): 1 to 64 of `A-Z a-z 0-9 _ - .`. */
export function checkPurpose (value: unknown): string {
  if (typeof value !== 'string' || !PURPOSE.test(value)) throw invalidInput('purpose', 'expected 1 to 64 letters, digits, "_", "-" or "."')
  return value
}

/** The subject is who the code is for (a user id, an email, a phone number), normalized by the caller. */
export function checkSubject (value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_SUBJECT || LONE_SURROGATE.test(value)) {
    throw invalidInput('subject', `expected a string of 1 to ${MAX_SUBJECT} characters (UTF-16 code units) without lone surrogates`)
  }
  return value
}

/**
 * A code as a user types it: 4 to 10 ASCII digits. Anything else can never be a code, so it is
 * refused before Redis and costs no attempt; a code of digits (even of another length than the
 * one issued) is a guess, counted by the verify script.
 */
export function checkCode (value: unknown): string {
  if (typeof value !== 'string' || !CODE.test(value)) throw invalidInput('code', 'expected a string of 4 to 10 digits')
  return value
}

/** A link token as `createToken` returned it: 43 characters of base64url. */
export function checkToken (value: unknown): string {
  if (typeof value !== 'string' || !TOKEN.test(value)) throw invalidInput('token', 'expected the 43-character token that createToken returned')
  return value
}

export function checkInteger (value: unknown, field: string, min: number, max: number): number {
  if (!isIntegerIn(value, min, max)) throw invalidInput(field, `expected an integer from ${min} to ${max}`)
  return value
}

/** A per-call lifetime, positive and at most `max` milliseconds. */
export function checkTtl (value: unknown, max: number): number {
  let ms: number
  try {
    ms = parsePositiveDuration(value, 'ttl')
  } catch {
    throw invalidInput('ttl', 'expected a positive duration: milliseconds or a string such as "30m"')
  }
  if (ms > max) throw invalidInput('ttl', max === MAX_CODE_TTL ? 'a one-time code lives at most 10 minutes' : `longer than maxTokenTtl (${max}ms)`)
  return ms
}

/**
 * The JSON of a token's data (`undefined` is `null`): at most MAX_DATA characters, and without
 * `__proto__` keys or `constructor.prototype` (what Fastify refuses in request bodies), so that
 * what consumeToken hands back is plain data.
 */
export function encodeData (value: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(value ?? null)
  } catch {
    throw invalidInput('data', 'not serializable as JSON')
  }
  if (json === undefined) throw invalidInput('data', 'not a JSON value')
  if (json.length > MAX_DATA) throw invalidInput('data', `expected JSON of at most ${MAX_DATA} characters`)
  let poisoned = false
  try {
    JSON.parse(json, (key, v: unknown) => {
      if (key === '__proto__' || (key === 'constructor' && v !== null && typeof v === 'object' && Object.hasOwn(v, 'prototype'))) poisoned = true
      return v
    })
  } catch {
    throw invalidInput('data', 'nested too deeply')
  }
  if (poisoned) throw invalidInput('data', 'it holds a "__proto__" key or "constructor.prototype"')
  return json
}
