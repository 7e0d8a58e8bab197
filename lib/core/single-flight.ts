/**
 * Coalesces concurrent calls by key within this process: while a call for a key runs,
 * later callers for the same key share its promise instead of starting their own.
 */
export class SingleFlight {
  readonly #running = new Map<string, Promise<unknown>>()

  /** Runs `fn` for `key` unless a call for `key` is already running; every caller gets its outcome. */
  run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key)
    if (running !== undefined) return running as Promise<T>
    let p: Promise<T>
    try {
      p = fn()
    } catch (err) {
      p = Promise.reject(err)
    }
    p = p.finally(() => this.#running.delete(key))
    this.#running.set(key, p)
    return p
  }

  /** True while a call for `key` runs. */
  has (key: string): boolean {
    return this.#running.has(key)
  }

  /** How many keys have a call running. */
  get size (): number {
    return this.#running.size
  }
}
