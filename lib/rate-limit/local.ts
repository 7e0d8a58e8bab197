// What the limiter keeps in this process: the clients it knows to be refused (so that their
// next requests are refused without a Redis call until their retry time), and the fallback
// limiter that counts while Redis is down (`onRedisError: 'local'`). Both are bounded maps
// that drop their oldest entry when full; neither is shared with other app instances.
import type { LimitResult, Policy, PolicyState } from './limiter.js'

interface Block { until: number, at: number, cost: number, result: LimitResult }

/** Refusals remembered until their retry time: at most `max` clients. */
export class BlockCache {
  readonly #max: number
  readonly #blocks = new Map<string, Block>()

  constructor (max: number) {
    this.#max = max
  }

  /** Remembers a refusal of a request of `cost` on `key` (nothing when it is due at once). */
  add (key: string, cost: number, result: LimitResult, now = Date.now()): void {
    if (result.allowed || result.retryAfterMs <= 0) return
    this.#blocks.delete(key)
    if (this.#blocks.size >= this.#max) this.#blocks.delete(this.#blocks.keys().next().value as string)
    this.#blocks.set(key, { until: now + result.retryAfterMs, at: now, cost, result })
  }

  /**
   * The refusal of a request of `cost` on `key`, as the remembered one aged to `now`, or
   * undefined when Redis has to be asked: nothing is remembered, its time has come, or the
   * request costs less than the one refused (a cheaper one may fit).
   */
  refused (key: string, cost: number, now = Date.now()): LimitResult | undefined {
    const block = this.#blocks.get(key)
    if (block === undefined) return undefined
    if (block.until <= now) { this.#blocks.delete(key); return undefined }
    if (cost < block.cost) return undefined
    const elapsed = now - block.at
    return {
      allowed: false,
      retryAfterMs: block.until - now,
      banned: block.result.banned,
      policies: block.result.policies.map((s) => ({ policy: s.policy, remaining: s.remaining, resetMs: Math.max(0, s.resetMs - elapsed) }))
    }
  }

  /** Forgets `key`. */
  delete (key: string): void {
    this.#blocks.delete(key)
  }

  get size (): number {
    return this.#blocks.size
  }
}

/**
 * The same policies as the Redis script (GCRA, fixed and sliding windows; no bans), counted in
 * this process on its own clock, for `onRedisError: 'local'`. At most `max` keys: the least
 * recently used one goes first.
 */
export class LocalLimiter {
  readonly #max: number
  // per key, per policy name: GCRA [tat]; windows [start, count, previous count]
  readonly #state = new Map<string, Map<string, number[]>>()

  constructor (max: number) {
    this.#max = max
  }

  consume (key: string, policies: readonly Policy[], cost: number, now = Date.now()): LimitResult {
    const state = this.#touch(key)
    const checked = policies.map((p) => evaluate(p, state.get(p.name), cost, now))
    const allowed = checked.every((c) => c.ok)
    let retry = 0
    for (const c of checked) if (!c.ok && c.wait > retry) retry = c.wait
    const policyStates: PolicyState[] = checked.map((c, i) => {
      const policy = policies[i] as Policy
      if (allowed) { state.set(policy.name, c.next); return { policy, remaining: Math.max(c.remainingAfter, 0), resetMs: Math.ceil(c.resetAfter) } }
      return { policy, remaining: Math.max(c.remainingBefore, 0), resetMs: Math.ceil(c.ok ? c.resetBefore : c.wait) }
    })
    return { allowed, retryAfterMs: Math.ceil(retry), banned: false, policies: policyStates, timeMs: now }
  }

  /** Gives back what a counted check of `cost` at `timeMs` used (as {@link Limiter.refund}). */
  refund (key: string, policies: readonly Policy[], cost: number, timeMs: number, now = Date.now()): void {
    const state = this.#state.get(key)
    if (state === undefined) return
    for (const p of policies) {
      const s = state.get(p.name)
      if (s === undefined) continue
      if (p.algorithm === 'gcra') {
        if ((s[0] as number) > now) s[0] = Math.max(now, (s[0] as number) - cost * p.windowMs / p.limit)
        continue
      }
      const start = timeMs - (timeMs % p.windowMs)
      if (s[0] === start) s[1] = Math.max(0, (s[1] as number) - cost)
      else if (s[0] === start + p.windowMs && p.algorithm === 'sliding-window') s[2] = Math.max(0, (s[2] as number) - cost)
    }
  }

  get size (): number {
    return this.#state.size
  }

  #touch (key: string): Map<string, number[]> {
    let state = this.#state.get(key)
    if (state !== undefined) this.#state.delete(key)
    else {
      state = new Map()
      if (this.#state.size >= this.#max) this.#state.delete(this.#state.keys().next().value as string)
    }
    this.#state.set(key, state)
    return state
  }
}

interface Evaluated { ok: boolean, remainingBefore: number, remainingAfter: number, resetBefore: number, resetAfter: number, wait: number, next: number[] }

// One policy's verdict on a request of `cost`, and its state if the request is counted: the
// arithmetic of the Redis script, in JavaScript.
function evaluate (p: Policy, stored: number[] | undefined, cost: number, now: number): Evaluated {
  if (p.algorithm === 'gcra') {
    const T = p.windowMs / p.limit
    const tau = p.burst * T
    const tat = Math.max(stored?.[0] ?? now, now)
    const next = tat + cost * T
    return {
      ok: next - now <= tau + 1e-3,
      remainingBefore: Math.floor((tau - (tat - now) + 1e-3) / T),
      remainingAfter: Math.floor((tau - (next - now) + 1e-3) / T),
      resetBefore: tat - now,
      resetAfter: next - now,
      wait: next - tau - now,
      next: [next]
    }
  }
  const w = p.windowMs
  const start = now - (now % w)
  const elapsed = now - start
  let cur = 0
  let prev = 0
  if (stored?.[0] === start) { cur = stored[1] as number; prev = stored[2] as number } else if (stored?.[0] === start - w && p.algorithm === 'sliding-window') prev = stored[1] as number
  const used = prev * (w - elapsed) / w + cur
  const ok = used + cost <= p.limit + 1e-9
  let wait = w - elapsed
  if (p.algorithm === 'sliding-window' && !ok) {
    wait = cur + cost <= p.limit && prev > 0
      ? w - (p.limit - cur - cost) * w / prev - elapsed
      : w - elapsed + Math.max(0, cur > 0 ? w - (p.limit - cost) * w / cur : 0)
  }
  return {
    ok,
    remainingBefore: Math.floor(p.limit - used + 1e-9),
    remainingAfter: Math.floor(p.limit - used - cost + 1e-9),
    resetBefore: w - elapsed,
    resetAfter: w - elapsed,
    wait,
    next: [start, cur + cost, prev]
  }
}
