import type { Cluster, Redis } from 'ioredis'
import { CounterClosedError, defineScripts, InvalidOptionError } from '../core/index.js'
import { lockScripts } from './lock-scripts.js'

/** The part of a pino / Fastify logger that the counter uses. */
export interface CounterLogger {
  warn: (obj: object, msg: string) => void
}

function checkInt (value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(name, `expected an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

/**
 * INCRBY that keeps the key's TTL; a key that did not exist (or had expired) is created
 * with `ttlMs`, so no counter ever lives without a TTL that it did not have before.
 * Resolves the new value. Rejects when the key holds something that is not an integer.
 */
export async function incrKeepTtl (client: Redis | Cluster, key: string, by: number, ttlMs: number): Promise<number> {
  checkInt(by, 'by', Number.MIN_SAFE_INTEGER)
  checkInt(ttlMs, 'ttlMs', 1)
  defineScripts(client, lockScripts)
  return await client.frsIncrKeepTtl(key, by, ttlMs)
}

export interface BufferedCounterOptions {
  /** The client (Redis or Cluster) that holds the pending total. */
  client: Redis | Cluster
  /** The key of the pending total, shared by every instance that counts the same thing. */
  key: string
  /** Hand the pending total to `onFlush` each time it reaches a multiple of this many. */
  flushEvery: number
  /** Also hand over whatever is pending this often, in ms. */
  flushInterval: number
  /** Receives the claimed total; when it rejects, the total goes back to Redis. Make it all-or-nothing. */
  onFlush: (total: number) => Promise<void>
  /** TTL of the pending total in Redis when it is created, ms; longer than `flushInterval`. @default max(24h, 10 × flushInterval) */
  ttl?: number
  /** Where failed background flushes are reported. @default undefined (not reported) */
  logger?: CounterLogger
}

/**
 * A counter that hands its total to a callback every `flushEvery` increments or every
 * `flushInterval` ms, across any number of instances on one key. Increments go to Redis
 * (INCRBY); a flush claims the pending total (GET and DEL in one script), so each increment belongs to
 * exactly one claim; a failed `onFlush` gives its claim back with INCRBY.
 *
 * Shutting down: {@link close} needs both Redis and whatever `onFlush` writes to, so close the
 * counter first, then the database, then the Redis client. Counters made by
 * `fastify.cache.counter()` are closed by `app.close()` before the suite's connections close:
 * close the database after `await app.close()` resolves, or in an onClose hook that first awaits
 * `app.cache.close()` (Fastify runs onClose hooks last-registered first, so a plain hook that
 * closes the database runs before the cache plugin's).
 */
export class BufferedCounter {
  readonly key: string
  readonly #client: Redis | Cluster
  readonly #flushEvery: number
  readonly #ttl: number
  readonly #onFlush: (total: number) => Promise<void>
  readonly #logger: CounterLogger | undefined
  readonly #timer: NodeJS.Timeout
  #chain: Promise<unknown> = Promise.resolve()
  #running = 0
  /** A claim that could not be given back to Redis (Redis down); added to the next flush. */
  #held = 0
  #closed = false

  constructor (opts: BufferedCounterOptions) {
    if (typeof opts !== 'object' || opts === null) throw new InvalidOptionError('counter', 'expected an options object')
    if (typeof opts.client?.set !== 'function') throw new InvalidOptionError('client', 'expected an ioredis Redis or Cluster')
    if (typeof opts.key !== 'string' || opts.key === '') throw new InvalidOptionError('key', 'expected a non-empty string')
    if (typeof opts.onFlush !== 'function') throw new InvalidOptionError('onFlush', 'expected an async function')
    this.key = opts.key
    this.#client = opts.client
    this.#flushEvery = checkInt(opts.flushEvery, 'flushEvery', 1)
    const interval = checkInt(opts.flushInterval, 'flushInterval', 1)
    this.#ttl = checkInt(opts.ttl ?? Math.max(86_400_000, interval * 10), 'ttl', interval + 1)
    this.#onFlush = opts.onFlush
    this.#logger = opts.logger
    defineScripts(this.#client, lockScripts)
    this.#timer = setInterval(() => {
      // A flush still running (a slow onFlush) covers this tick; do not pile up behind it.
      if (this.#running === 0) this.#background()
    }, interval)
    this.#timer.unref()
  }

  /** Adds `by` and resolves the pending total in Redis; crossing a multiple of `flushEvery` starts a flush. */
  async incr (by = 1): Promise<number> {
    if (this.#closed) throw new CounterClosedError(this.key)
    checkInt(by, 'by', 1)
    const value = await this.#client.frsIncrKeepTtl(this.key, by, this.#ttl)
    // Only the increment that crosses the threshold flushes, so instances do not race to claim.
    if (Math.floor((value - by) / this.#flushEvery) < Math.floor(value / this.#flushEvery)) this.#background()
    return value
  }

  /** Claims whatever is pending and hands it to `onFlush`; resolves the amount (0 when nothing was pending). */
  flush (): Promise<number> {
    this.#running++
    const run = this.#chain.then(() => this.#flushOnce()).finally(() => { this.#running-- })
    this.#chain = run.catch(() => undefined)
    return run
  }

  /**
   * Stops the timer and flushes what is pending, including increments still on their way to
   * Redis (they were sent first on the same connection); later `incr` calls reject with
   * FRS_COUNTER_CLOSED. Call it while `onFlush`'s destination and the client are still open: if
   * `onFlush` fails here, the total goes back to Redis and waits for the next flush of this key.
   */
  async close (): Promise<number> {
    this.#closed = true
    clearInterval(this.#timer)
    return await this.flush()
  }

  #background (): void {
    this.flush().catch((err: unknown) => {
      this.#logger?.warn({ err, key: this.key }, 'buffered counter: flush failed; the total stays pending')
    })
  }

  async #flushOnce (): Promise<number> {
    const claimed = await this.#client.frsClaim(this.key)
    const total = (claimed === null ? 0 : Number(claimed)) + this.#held
    this.#held = 0
    if (total === 0) return 0
    try {
      await this.#onFlush(total)
    } catch (err) {
      await this.#giveBack(total)
      throw err
    }
    return total
  }

  async #giveBack (total: number): Promise<void> {
    try {
      await this.#client.frsIncrKeepTtl(this.key, total, this.#ttl)
    } catch (err) {
      // Redis is unreachable: keep the claim in memory for the next flush rather than lose it.
      this.#held += total
      this.#logger?.warn({ err, key: this.key, total }, 'buffered counter: could not give a failed flush back to Redis; holding it in memory')
    }
  }
}
