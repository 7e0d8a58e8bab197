import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { isCluster } from '../core/index.js'

export interface LocalCacheOptions {
  /** How long a read may be served from memory, in ms. */
  ttl: number
  /** The most sessions held. */
  max: number
}

/** Told when the cache stops (`err` says why) and starts serving. */
export type LocalCacheLog = (live: boolean, err?: unknown) => void

interface Entry {
  /** The record as Redis returned it (decoded afresh for every request). */
  value: string
  /** Local time (ms) after which it is not served. */
  until: number
}

/**
 * Recently read session records of this instance, served for at most `ttl` each. Every
 * script that changes or ends a session publishes its key on `channel`; this cache holds a
 * subscription to it and drops what it names, on every instance.
 *
 * Messages are `<origin> <key>`. Those of this cache's own writes are skipped: the store
 * keeps what it wrote itself, and replies on one connection come in the order Redis ran the
 * commands, so a read of this instance that ran before its own write cannot land after it.
 *
 * Nothing is served unless the subscription is live: when its connection closes, everything
 * is dropped and nothing is cached until it is subscribed again. A read of a key that was in
 * flight while an invalidation of that key arrived (or while the subscription changed) is
 * not kept, so a reply that raced a change can never be served later.
 */
export class LocalSessionCache {
  readonly stats = { hits: 0, invalidations: 0 }
  /** Names this cache in the messages of its own writes. */
  readonly origin = randomBytes(8).toString('hex')
  readonly #entries = new Map<string, Entry>()
  readonly #client: Redis | Cluster
  readonly #channel: string
  readonly #o: LocalCacheOptions
  readonly #log: LocalCacheLog
  // Published keys are the keys Redis sees: with an ioredis keyPrefix, longer than ours.
  readonly #keyPrefix: string
  #lastError: unknown
  #warned = false
  #subscriber: Redis | undefined
  #live = false
  #closed = false
  /** Counts invalidations and subscription changes: the ticket of a read. */
  #seq = 0
  /** #seq at the last subscription change. */
  #reset = 0
  /** Reads in flight by key, and the #seq of the last invalidation of such a key. */
  readonly #pending = new Map<string, { reads: number, invalidated: number }>()

  constructor (client: Redis | Cluster, channel: string, opts: LocalCacheOptions, log: LocalCacheLog = () => {}) {
    this.#client = client
    this.#channel = channel
    this.#o = opts
    this.#log = log
    this.#keyPrefix = client.options.keyPrefix ?? ''
  }

  /** Whether the invalidation subscription is live (and the cache in use). */
  get live (): boolean {
    return this.#live
  }

  /** How many sessions are held. */
  get size (): number {
    return this.#entries.size
  }

  /** Opens the subscription in the background; the cache serves once it is live. */
  start (): void {
    this.#subscriber = this.#open()
  }

  #reopen (): void {
    setTimeout(() => {
      if (this.#closed) return
      this.#subscriber = this.#open()
    }, 100).unref()
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#off()
    this.#subscriber?.disconnect()
  }

  /** The record of `key` when held and fresh. */
  get (key: string, now: number): string | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (now >= entry.until) {
      this.#entries.delete(key)
      return undefined
    }
    this.stats.hits++
    return entry.value
  }

  /** A read of `key` from Redis starts; pass the ticket to {@link end}. */
  begin (key: string): number {
    const pending = this.#pending.get(key)
    if (pending === undefined) this.#pending.set(key, { reads: 1, invalidated: 0 })
    else pending.reads++
    return this.#seq
  }

  /**
   * A read of `key` ended: its record (undefined when none or failed) is kept for `ttl`, or
   * for the `left` ms Redis gave it when less, unless the key or the subscription changed
   * since the read began.
   */
  end (key: string, ticket: number, value: string | undefined, left: number, now: number): void {
    const pending = this.#pending.get(key)
    if (pending === undefined) return // the subscription changed meanwhile
    if (--pending.reads === 0) this.#pending.delete(key)
    if (value === undefined || !this.#live || left <= 0 || this.#reset > ticket || pending.invalidated > ticket) return
    if (this.#entries.size >= this.#o.max && !this.#entries.has(key)) this.#entries.delete(this.#entries.keys().next().value as string)
    this.#entries.set(key, { value, until: now + Math.min(this.#o.ttl, left) })
  }

  /** Drops a key (this instance changed or ended it). */
  drop (key: string): void {
    this.#entries.delete(key)
  }

  #invalidate (message: string): void {
    const space = message.indexOf(' ')
    if (message.slice(0, space) === this.origin) return
    const published = message.slice(space + 1)
    const key = published.startsWith(this.#keyPrefix) ? published.slice(this.#keyPrefix.length) : published
    this.stats.invalidations++
    this.#entries.delete(key)
    const pending = this.#pending.get(key)
    if (pending !== undefined) pending.invalidated = ++this.#seq
  }

  #off (): void {
    if (this.#live && !this.#closed) this.#log(false, this.#lastError)
    this.#live = false
    this.#reset = ++this.#seq
    this.#pending.clear()
    this.#entries.clear()
  }

  // A connection of its own (a subscribed connection runs no other command). On a Cluster,
  // PUBLISH reaches every node, so one node will do; after a few failed reconnects to it,
  // another master is tried.
  #open (): Redis | undefined {
    const cluster = isCluster(this.#client)
    const base = cluster ? pick((this.#client as Cluster).nodes('master')) : this.#client as Redis
    if (base === undefined) { // no master known right now: soon again
      this.#reopen()
      return undefined
    }
    const sub = base.duplicate({
      autoResubscribe: false,
      lazyConnect: true,
      enableOfflineQueue: true,
      connectionName: 'frs:session-invalidation',
      ...(cluster ? { retryStrategy: (times: number) => times > 3 ? null : 100 * times } : {})
    })
    sub.on('error', (err: unknown) => { this.#lastError = err }) // the next 'ready' (or another node) takes over
    sub.on('message', (_channel: string, key: string) => this.#invalidate(key))
    sub.on('close', () => this.#off())
    sub.on('ready', () => {
      sub.subscribe(this.#channel).then(() => {
        if (sub.status !== 'ready' || this.#closed) return
        this.#reset = ++this.#seq // reads sent before the subscription are not kept
        this.#live = true
        this.#lastError = undefined
        this.#warned = false
        this.#log(true)
      }, (err: unknown) => {
        if (!this.#warned) this.#log(false, err) // once, not at every retry
        this.#warned = true
        sub.disconnect(true) // reconnect, and try again on 'ready'
      })
    })
    sub.on('end', () => { if (this.#subscriber === sub) this.#reopen() })
    sub.connect().catch(() => {}) // retried by the connection itself
    return sub
  }
}

function pick (nodes: Redis[]): Redis | undefined {
  return nodes[Math.floor(Math.random() * nodes.length)]
}
