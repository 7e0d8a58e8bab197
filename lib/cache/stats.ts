/** Counters of one namespace since the cache was created. */
export interface NamespaceStats {
  /** Reads that found a fresh value in Redis. */
  hits: number
  /** Reads answered from this instance's memory (the `local` tier), without Redis. */
  localHits: number
  /** Reads that found nothing valid (absent, expired, invalidated, undecodable). */
  misses: number
  /** Reads that served a value past its TTL but inside its grace. */
  staleHits: number
  /** Operations that failed open because Redis failed, timed out or the circuit was open. */
  errors: number
}

/** Stats of every namespace of one cache, by namespace name. */
export class CacheStats {
  readonly #byNamespace = new Map<string, NamespaceStats>()

  /** The live counters of `namespace`, created on first use. */
  of (namespace: string): NamespaceStats {
    let s = this.#byNamespace.get(namespace)
    if (s === undefined) {
      s = { hits: 0, localHits: 0, misses: 0, staleHits: 0, errors: 0 }
      this.#byNamespace.set(namespace, s)
    }
    return s
  }

  /** A copy of every namespace's counters. */
  snapshot (): Record<string, NamespaceStats> {
    const out: Record<string, NamespaceStats> = {}
    for (const [name, s] of this.#byNamespace) out[name] = { ...s }
    return out
  }
}
