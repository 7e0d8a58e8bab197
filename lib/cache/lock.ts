import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Cluster, Redis } from 'ioredis'
import { checkKeys, coreScripts, defineScripts, InvalidOptionError, LockTimeoutError, optionKeys } from '../core/index.js'

export interface LockOptions {
  /** Lock lifetime in ms (auto-expiry if the holder dies). */
  ttl: number
  /** How long to keep trying to acquire, ms; 0 = try once. @default 0 */
  wait?: number
  /** Delay between tries, ms (with jitter). @default 50 */
  retryDelay?: number
}

export interface LockHandle {
  readonly key: string
  readonly token: string
  /** Releases if still ours (compare-and-delete); false when it expired or another holder has it. */
  release: () => Promise<boolean>
  /** Sets the TTL again (to `ttlMs`, or the lock's `ttl`) if still ours; false otherwise. */
  extend: (ttlMs?: number) => Promise<boolean>
}

const LOCK_KEYS = optionKeys<LockOptions>({ ttl: true, wait: true, retryDelay: true })

interface ResolvedLockOptions { ttl: number, wait: number, retryDelay: number }

function checkMs (value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(name, `expected an integer number of milliseconds >= ${min}, got ${String(value)}`)
  }
  return value
}

function resolveLockOptions (opts: LockOptions): ResolvedLockOptions {
  if (typeof opts !== 'object' || opts === null) throw new InvalidOptionError('lock', 'expected an options object with a ttl')
  checkKeys(opts, LOCK_KEYS, 'lock')
  return {
    ttl: checkMs(opts.ttl, 'ttl', 1),
    wait: checkMs(opts.wait ?? 0, 'wait', 0),
    retryDelay: checkMs(opts.retryDelay ?? 50, 'retryDelay', 1)
  }
}

class Lock implements LockHandle {
  readonly key: string
  readonly token: string
  readonly #client: Redis | Cluster
  readonly #ttl: number

  constructor (client: Redis | Cluster, key: string, token: string, ttl: number) {
    this.#client = client
    this.key = key
    this.token = token
    this.#ttl = ttl
  }

  async release (): Promise<boolean> {
    return (await this.#client.frsCompareDel(this.key, this.token)) === 1
  }

  async extend (ttlMs: number = this.#ttl): Promise<boolean> {
    checkMs(ttlMs, 'ttlMs', 1)
    return (await this.#client.frsComparePexpire(this.key, this.token, ttlMs)) === 1
  }
}

/** SET key token NX PX ttl; resolves null when not acquired within `wait`. */
export async function acquireLock (client: Redis | Cluster, key: string, opts: LockOptions): Promise<LockHandle | null> {
  if (typeof key !== 'string' || key === '') throw new InvalidOptionError('key', 'expected a non-empty string built with lib/keys.ts')
  const { ttl, wait, retryDelay } = resolveLockOptions(opts)
  // The core plugin registers scripts on its clients; this covers a client from elsewhere.
  defineScripts(client, coreScripts)
  // The token is what makes release and extend safe: only the holder knows it.
  const token = randomBytes(16).toString('base64url')
  const deadline = Date.now() + wait
  for (;;) {
    if (await client.set(key, token, 'PX', ttl, 'NX') === 'OK') return new Lock(client, key, token, ttl)
    const left = deadline - Date.now()
    if (left <= 0) return null
    // Jitter spreads waiters out so they do not retry in lockstep.
    await sleep(Math.min(left, Math.round(retryDelay * (0.5 + Math.random()))))
  }
}

/**
 * Runs fn under the lock and always releases; throws FRS_LOCK_TIMEOUT (LockTimeoutError)
 * when not acquired within wait. A failed release does not mask fn's outcome: the lock
 * then ends by its TTL.
 */
export async function withLock<T> (
  client: Redis | Cluster,
  key: string,
  opts: LockOptions,
  fn: (lock: LockHandle) => Promise<T>
): Promise<T> {
  const lock = await acquireLock(client, key, opts)
  if (lock === null) throw new LockTimeoutError(key, opts.wait ?? 0)
  try {
    return await fn(lock)
  } finally {
    await lock.release().catch(() => false)
  }
}
