import { createHmac, timingSafeEqual } from 'node:crypto'

/** What verifying a signed cookie gives: the value when a secret signed it, and whether an older secret did. */
export interface UnsignResult {
  valid: boolean
  /** True when a secret other than the first signed it: the cookie is due to be signed again. */
  renew: boolean
  value: string | null
}

/** How many signatures each cache keeps (oldest dropped first): about 2 MB at the most. */
export const SIGNATURE_CACHE_SIZE = 10_000

/**
 * Signs cookie values as `value.signature`: HMAC-SHA256 in base64 without padding, the format
 * of cookie-signature, @fastify/cookie and express-session, so a cookie signed by any of them
 * verifies here and the other way round. Verification is constant-time and tries every secret.
 */
class HmacSigner {
  readonly #secrets: readonly string[]

  constructor (secrets: readonly string[]) {
    this.#secrets = secrets
  }

  sign (value: string): string {
    return value + '.' + mac(value, this.#secrets[0] as string)
  }

  unsign (signed: string): UnsignResult {
    const dot = signed.lastIndexOf('.')
    const value = signed.slice(0, dot)
    const actual = Buffer.from(signed.slice(dot + 1))
    for (let i = 0; i < this.#secrets.length; i++) {
      const expected = Buffer.from(mac(value, this.#secrets[i] as string))
      if (expected.length === actual.length && timingSafeEqual(expected, actual)) return { valid: true, renew: i > 0, value }
    }
    return { valid: false, renew: false, value: null }
  }
}

function mac (value: string, secret: string): string {
  return createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '')
}

/**
 * The cookie signer that @fastify/session uses, with the HMAC of recent ids remembered.
 * @fastify/session computes two HMACs a request (it verifies the cookie, then signs the id
 * again for the restored session); a returning session needs neither once seen. Only
 * results of a real HMAC are cached, keyed by the exact string, so a hit answers exactly as
 * the HMAC would; a forged cookie is never cached and costs its full check every time.
 */
export class CachingSigner {
  readonly #signer: HmacSigner
  readonly #signed = new Map<string, string>()
  readonly #verified = new Map<string, UnsignResult>()
  readonly #size: number

  constructor (secrets: string[], size = SIGNATURE_CACHE_SIZE) {
    if (secrets.length === 0) throw new TypeError('at least one secret is needed')
    this.#signer = new HmacSigner(secrets)
    this.#size = size
  }

  /** How many signatures and verified cookies are remembered. */
  get cached (): { signed: number, verified: number } {
    return { signed: this.#signed.size, verified: this.#verified.size }
  }

  sign (value: string): string {
    let signed = this.#signed.get(value)
    if (signed === undefined) {
      signed = this.#signer.sign(value)
      remember(this.#signed, value, signed, this.#size)
    }
    return signed
  }

  /** `renew` is true when an older secret signed it: the cookie is due to be signed again. */
  unsign (signed: string): UnsignResult {
    let result = this.#verified.get(signed)
    if (result === undefined) {
      result = this.#signer.unsign(signed)
      if (result.valid) remember(this.#verified, signed, Object.freeze(result), this.#size)
    }
    return result
  }
}

function remember<V> (map: Map<string, V>, key: string, value: V, size: number): void {
  if (map.size >= size) map.delete(map.keys().next().value as string)
  map.set(key, value)
}
