import type { Cluster, Redis } from 'ioredis'
import { flushWrites } from './coalesce.js'
import { isCluster } from './client.js'
import { timedCall } from './events.js'

export interface BatcherOptions<T, R> {
  client: Redis | Cluster
  /** Sends one batch as one script call; replies in the order of `batch`. An async function: it must not throw. */
  send: (batch: T[]) => Promise<R[]>
  /** The most items one call carries; more go in further calls sent at the same time. @default 128 */
  maxBatch?: number
  /** The most calls in flight per channel; items that arrive meanwhile wait for the next (`Infinity`: none wait). @default 1 */
  maxInFlight?: number
  /** What the calls do, as the `redisCall` diagnostics channel reports them. @default 'batch' */
  feature?: string
}

interface Waiting<T, R> { item: T, resolve: (reply: R) => void, reject: (err: unknown) => void }

/** The items of one channel: those waiting, and how many calls are in flight. */
interface Channel<T, R> { waiting: Array<Waiting<T, R>>, inFlight: number, scheduled: boolean }

/**
 * Gathers requests for one script into batches: the items of one event-loop turn go together
 * in one call, in arrival order, sent at the end of the turn, so a lone request waits for no
 * one. With `maxInFlight` calls in flight, the items that arrive meanwhile wait and then go
 * together in the next call. Under load this turns hundreds of round trips (and script runs)
 * into a few.
 *
 * On a Cluster every key of one call must be in one slot, so a channel (and a batch) holds one
 * key; standalone, one channel holds every key.
 *
 * A call that fails fails every item waiting on its channel too: they would go to the same
 * failing server and have already waited for it, so no item waits much longer than one
 * command timeout.
 */
export class Batcher<T, R> {
  readonly #client: Redis | Cluster
  readonly #send: (batch: T[]) => Promise<R[]>
  readonly #maxBatch: number
  readonly #maxInFlight: number
  readonly #perKey: boolean
  readonly #feature: string
  readonly #channels = new Map<string, Channel<T, R>>()

  constructor (opts: BatcherOptions<T, R>) {
    this.#client = opts.client
    this.#send = opts.send
    this.#maxBatch = opts.maxBatch ?? 128
    this.#maxInFlight = opts.maxInFlight ?? 1
    this.#perKey = isCluster(opts.client)
    this.#feature = opts.feature ?? 'batch'
  }

  /** Queues `item`, whose Redis key is `key`, for the next call of its channel. */
  add (key: string, item: T): Promise<R> {
    const id = this.#perKey ? key : ''
    let channel = this.#channels.get(id)
    if (channel === undefined) {
      channel = { waiting: [], inFlight: 0, scheduled: false }
      this.#channels.set(id, channel)
    }
    const ch = channel
    return new Promise((resolve, reject) => {
      ch.waiting.push({ item, resolve, reject })
      this.#schedule(id, ch)
    })
  }

  // Sends what is waiting at the end of this event-loop turn, unless enough calls are in flight.
  #schedule (id: string, ch: Channel<T, R>): void {
    if (ch.scheduled || ch.inFlight >= this.#maxInFlight || ch.waiting.length === 0) return
    ch.scheduled = true
    setImmediate(() => { ch.scheduled = false; this.#flush(id, ch) })
  }

  // Sends everything waiting, maxBatch items per call, at once: it runs from setImmediate,
  // where a write held for the end of the turn (coalesceWrites) would wait one more turn.
  #flush (id: string, ch: Channel<T, R>): void {
    if (ch.waiting.length > 0) queueMicrotask(() => flushWrites(this.#client))
    while (ch.waiting.length > 0) {
      const batch = ch.waiting.splice(0, this.#maxBatch)
      ch.inFlight++
      timedCall(this.#client, this.#feature, () => this.#send(batch.map((w) => w.item))).then((replies) => {
        for (let i = 0; i < batch.length; i++) (batch[i] as Waiting<T, R>).resolve(replies[i] as R)
      }, (err: unknown) => {
        for (const w of batch) w.reject(err)
        for (const w of ch.waiting.splice(0)) w.reject(err)
      }).finally(() => {
        ch.inFlight--
        if (ch.waiting.length > 0) this.#schedule(id, ch)
        else if (ch.inFlight === 0 && id !== '') this.#channels.delete(id)
      })
    }
  }
}
