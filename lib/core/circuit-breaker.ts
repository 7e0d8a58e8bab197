import { CacheUnavailableError } from './errors.js'
import { channels, clientLabels, timedCall } from './events.js'
import type { CircuitEvent } from './events.js'

/** What the cache logs through: pino's `warn(obj, msg)` (fastify.log) fits. */
export interface WarnLogger { warn: (obj: object, msg: string) => void }

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold: number
  /** How long an open circuit skips Redis, ms. */
  openFor: number
  /** The longest any call may take, ms (the command timeout); Infinity when the client enforces it itself. */
  timeout: number
  /** At most one warning per this many ms. */
  warnInterval: number
  log: WarnLogger
  /** The client the calls go to: names the connection in diagnostics events. @default none (no events) */
  client?: object
}

/**
 * Runs Redis calls for a fail-open feature: each call is bounded by `timeout`; after
 * `threshold` consecutive failures the circuit opens and calls fail at once for `openFor` ms,
 * then one call at a time probes Redis until one succeeds. Warnings are rate-limited.
 */
export class CircuitBreaker {
  readonly #opts: CircuitBreakerOptions
  #failures = 0
  #openUntil = 0
  #probing = false
  #lastWarn = 0
  #suppressed = 0

  constructor (opts: CircuitBreakerOptions) {
    this.#opts = opts
  }

  /** True while calls skip Redis. */
  get open (): boolean {
    return this.#failures >= this.#opts.threshold && (Date.now() < this.#openUntil || this.#probing)
  }

  /** Consecutive failures so far. */
  get failures (): number {
    return this.#failures
  }

  /** Where warnings go. */
  get log (): WarnLogger {
    return this.#opts.log
  }

  /**
   * Runs `fn`; rejects with FRS_CACHE_UNAVAILABLE (cause: the Redis error) when it fails,
   * times out (after `timeout`, default the command timeout) or the circuit is open. An error
   * reply (Redis answered, e.g. WRONGTYPE) fails the call but does not count toward opening.
   */
  // Written with then() rather than async/await: it is on the path of every cache hit.
  run<T> (what: string, fn: () => Promise<T>, timeout = this.#opts.timeout): Promise<T> {
    if (this.open) return Promise.reject(new CacheUnavailableError('the circuit is open after repeated Redis failures'))
    const probe = this.#failures >= this.#opts.threshold
    if (probe) {
      this.#probing = true
      this.#publish('half-open')
    }
    let timer: NodeJS.Timeout | undefined
    let call: Promise<T>
    try {
      call = this.#opts.client === undefined ? fn() : timedCall(this.#opts.client, 'cache', fn)
    } catch (err) {
      call = Promise.reject(err)
    }
    // Infinity: the client's own command timeout bounds the call; a timer per call costs ~10% of a hit.
    if (timeout !== Infinity) {
      call = Promise.race([call, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no reply within ${timeout}ms`)), timeout)
      })])
    }
    return call.then((result) => {
      clearTimeout(timer)
      if (probe) this.#probing = false
      if (this.#failures >= this.#opts.threshold) this.#publish('closed')
      this.#failures = 0
      return result
    }, (err: unknown) => {
      clearTimeout(timer)
      if (probe) this.#probing = false
      const wasOpen = this.#failures >= this.#opts.threshold
      if ((err as Error).name === 'ReplyError') this.#failures = 0
      else this.#failures++
      if (this.#failures >= this.#opts.threshold) {
        this.#openUntil = Date.now() + this.#opts.openFor
        // a failed probe opens it again; so does the failure that reaches the threshold
        if (probe || !wasOpen) this.#publish('open')
      } else if (wasOpen) {
        this.#publish('closed')
      }
      this.warn(err, `cache ${what} failed; failing open`)
      throw new CacheUnavailableError((err as Error).message, { cause: err })
    })
  }

  #publish (state: CircuitEvent['state']): void {
    if (this.#opts.client === undefined || !channels.circuit.hasSubscribers) return
    const { connection, prefix } = clientLabels(this.#opts.client)
    channels.circuit.publish({ prefix, connection, state })
  }

  /** Logs a warning unless one was logged within `warnInterval`; counts the ones it drops. */
  warn (err: unknown, msg: string): void {
    const now = Date.now()
    if (now - this.#lastWarn < this.#opts.warnInterval) {
      this.#suppressed++
      return
    }
    this.#opts.log.warn({ err, suppressed: this.#suppressed, failures: this.#failures }, msg)
    this.#lastWarn = now
    this.#suppressed = 0
  }
}
