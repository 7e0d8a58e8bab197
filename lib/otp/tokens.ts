import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { hashed } from '../core/index.js'
import type { Duration, Keyspace } from '../core/index.js'
import { guard, subjectPart } from './common.js'
import type { OtpLogger } from './common.js'
import { checkPurpose, checkSubject, checkTtl, checkToken, encodeData, fields } from './input.js'
import type { ResolvedOtpOptions } from './options.js'

export interface CreateTokenInput {
  /** What the link is for, e.g. `'password-reset'`, `'verify-email'`, `'magic-link'`. */
  purpose: string
  /** Who it is for; `consumeToken` gives it back. */
  subject: string
  /** Lifetime, at most `maxTokenTtl`. @default the plugin's tokenTtl ('1h') */
  ttl?: Duration
  /** JSON data handed back on consume (stored in clear: put no secrets in it). @default null */
  data?: unknown
}

export interface TokenRecord<T = unknown> { subject: string, data: T }

// s: subject, g: generation at creation, k: the generation key it was read from (kept, so that
// a later change of the secret, which moves the subject's keys, cannot revive revoked tokens), d: data
interface StoredToken { s: string, g: number, k: string, d: unknown }

// The generation key outlives every token that read it by this much, so that it never
// expires (and falls back to 0) while a token of an older generation is still alive.
const GENERATION_MARGIN = 60_000

/**
 * One-time link tokens. A token is stored only under its SHA-256 digest, in a key found from
 * the purpose and the token alone. Revocation is a generation number per (purpose, subject),
 * stored in the subject's hash slot: on a Cluster it is not in the token's slot, so consume
 * is two steps, GETDEL of the token (exactly one caller gets the record) and then a read of
 * the generation. Both orders of a racing consume and revokeAll are a valid history, and a
 * consume that starts after revokeAll returned always fails. Putting a hash tag inside the
 * token would allow one script, but would make the token carry more than 32 random bytes.
 */
export class OtpTokens {
  readonly #client: Redis | Cluster
  readonly #keys: Keyspace
  readonly #options: Readonly<ResolvedOtpOptions>
  readonly #log: OtpLogger | undefined

  constructor (client: Redis | Cluster, keys: Keyspace, options: Readonly<ResolvedOtpOptions>, log?: OtpLogger) {
    this.#client = client // Otp, which builds this, has defined the scripts on it
    this.#keys = keys
    this.#options = options
    this.#log = log
  }

  /** Creates a token; it is returned once and never stored in clear. Malformed inputs throw FRS_OTP_INVALID_INPUT (400). */
  async create (input: CreateTokenInput): Promise<{ token: string, expiresAt: Date }> {
    const i = fields(input)
    const purpose = checkPurpose(i.purpose)
    const subject = checkSubject(i.subject)
    const ttl = i.ttl === undefined ? this.#options.tokenTtl : checkTtl(i.ttl, this.#options.maxTokenTtl)
    const data = encodeData(i.data)
    const token = randomBytes(32).toString('base64url')
    const generationKey = this.#generationKey(purpose, subject)
    const generation = await guard(this.#log, 'createToken', () => this.#client.frsOtpGeneration(generationKey, ttl + GENERATION_MARGIN))
    const record = encode(subject, generation, generationKey, data)
    await guard(this.#log, 'createToken', () => this.#client.set(this.#tokenKey(purpose, token), record, 'PX', ttl))
    this.#log?.debug({ purpose, ttl }, 'otp: token created')
    return { token, expiresAt: new Date(Date.now() + ttl) }
  }

  /** Uses a token up: exactly one caller gets its subject and data, the others `null`. A malformed token throws FRS_OTP_INVALID_INPUT (400). */
  async consume<T = unknown> (token: unknown, opts: { purpose: string }): Promise<TokenRecord<T> | null> {
    const purpose = checkPurpose(fields(opts).purpose)
    const key = this.#tokenKey(purpose, checkToken(token))
    const raw = await guard(this.#log, 'consumeToken', () => this.#client.getdel(key))
    const record = await this.#current<T>(raw)
    this.#log?.debug({ purpose, found: record !== null }, 'otp: token consumed')
    return record
  }

  /** Reads a token without using it up (a confirm page: mail scanners open links). */
  async peek<T = unknown> (token: unknown, opts: { purpose: string }): Promise<TokenRecord<T> | null> {
    const purpose = checkPurpose(fields(opts).purpose)
    const key = this.#tokenKey(purpose, checkToken(token))
    const raw = await guard(this.#log, 'peekToken', () => this.#client.get(key))
    return this.#current<T>(raw)
  }

  /** Invalidates every outstanding token of this purpose and subject (e.g. after a password change). */
  async revokeAll (opts: { subject: string, purpose: string }): Promise<void> {
    const { purpose: p, subject: s } = fields(opts)
    const purpose = checkPurpose(p)
    const subject = checkSubject(s)
    await guard(this.#log, 'revokeAll', () => this.#client.frsOtpRevoke(this.#generationKey(purpose, subject), GENERATION_MARGIN))
    this.#log?.debug({ purpose }, 'otp: tokens revoked')
  }

  async #current<T> (raw: string | null): Promise<TokenRecord<T> | null> {
    if (raw === null) return null
    const stored = JSON.parse(raw) as StoredToken
    const current = await guard(this.#log, 'tokenGeneration', () => this.#client.get(stored.k))
    if (Number(current ?? 0) !== stored.g) return null
    return { subject: stored.s, data: stored.d as T }
  }

  #tokenKey (purpose: string, token: string): string {
    return this.#keys.key('tok', purpose, hashed(token))
  }

  #generationKey (purpose: string, subject: string): string {
    return this.#keys.taggedKey([subjectPart(this.#options.secret, subject)], 'gen', purpose)
  }
}

// The data is JSON already (checked by encodeData), spliced in as it is.
function encode (subject: string, generation: number, generationKey: string, data: string): string {
  return `{"s":${JSON.stringify(subject)},"g":${JSON.stringify(generation)},"k":${JSON.stringify(generationKey)},"d":${data}}`
}
