import { Signer } from '@fastify/cookie'
import type { UnsignResult } from '@fastify/cookie'

/** How many signatures each cache keeps (oldest dropped first): about 2 MB at the most. */
export const SIGNATURE_CACHE_SIZE = 10_000

/**
 * The cookie signer that @fastify/session uses, with the HMAC of recent ids remembered.
 * @fastify/session computes two HMACs a request (it verifies the cookie, then signs the id
 * again for the restored session); a returning session needs neither once seen. Only
 * results of a real HMAC are cached, keyed by the exact string, so a hit answers exactly as
 * the HMAC would; a forged cookie is never cached and costs its full check every time.
 */
export class CachingSigner {
  readonly #signer: Signer
  readonly #signed = new Map<string, string>()
  readonly #verified = new Map<string, UnsignResult>()
  readonly #size: number

  constructor (secrets: string[], size = SIGNATURE_CACHE_SIZE) {
    this.#signer = new Signer(secrets, 'sha256')
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
