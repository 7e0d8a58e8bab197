// The local tier: in-process copies of what Redis holds, kept coherent across instances by an
// invalidation channel. One mechanism for every feature that opts in (sessions, the cache
// toolkit): each feature publishes what it changes, and every instance drops what it hears.
import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { isCluster } from './client.js'

export interface LocalTierOptions {
  /** How long a copy may be served from memory, in ms. */
  ttl: number
  /** The most copies held; past it, the oldest is dropped. */
  max: number
}

/** Told when the tier stops (`err` says why) and starts serving. */
export type LocalTierLog = (live: boolean, err?: unknown) => void

/** The message that drops everything an instance holds on one channel. */
export const DROP_ALL = '*'

interface Entry<V> {
  value: V
  /** Local time (ms) after which it is not served. */
  until: number
  /** Other keys (a namespace's or a tag's generation) whose change drops this copy too. */
  deps: readonly string[]
}

// Invalidations remembered for the reads in flight; past this many, those reads are all let go.
const MAX_RECENT = 10_000

/**
 * Recently read values of this instance, served for at most `ttl` each. Every change of a key
 * that any instance may hold is published on `channel` as `<origin> <key>` (or
 * `<origin> *`: everything); this tier holds a subscription to it and drops what it names,
 * and the copies that depend on it.
 *
 * Messages of this tier's own origin are skipped: the feature drops (or keeps) what it wrote
 * itself, and replies on one connection come in the order Redis ran the commands, so a read of
 * this instance that ran before its own write cannot land after it.
 *
 * Nothing is served unless the subscription is live: when its connection closes, everything
 * is dropped and nothing is kept until it is subscribed again. A read during which an
 * invalidation of its key or of one of its dependencies arrived (or during which the
 * subscription changed) is not kept, so a reply that raced a change is never served later.
 */
export class LocalTier<V> {
  readonly stats = { hits: 0, invalidations: 0 }
  /** Names this instance in the messages of its own writes. */
  readonly origin = randomBytes(8).toString('hex')
  readonly #entries = new Map<string, Entry<V>>()
  /** Copies by the dependency keys they name. */
  readonly #dependents = new Map<string, Set<string>>()
  readonly #client: Redis | Cluster
  readonly #channel: string
  readonly #name: string
  readonly #o: LocalTierOptions
  readonly #log: LocalTierLog
  // Published keys are the keys Redis sees: with an ioredis keyPrefix, longer than ours.
  readonly #keyPrefix: string
  #lastError: unknown
  #warned = false
  #subscriber: Redis | undefined
  #live = false
  #closed = false
  /** Counts invalidations and subscription changes: the ticket of a read. */
  #seq = 0
  /** #seq at the last subscription change or drop of everything. */
  #reset = 0
  /** Reads in flight. */
  #reading = 0
  /** The #seq of each key invalidated while reads were in flight; forgotten when none is. */
  readonly #recent = new Map<string, number>()

  /** `name` names the subscription's connection (CLIENT LIST). */
  constructor (client: Redis | Cluster, channel: string, opts: LocalTierOptions, log: LocalTierLog = () => {}, name = 'frs:invalidation') {
    this.#client = client
    this.#channel = channel
    this.#o = opts
    this.#log = log
    this.#name = name
    this.#keyPrefix = client.options.keyPrefix ?? ''
  }

  /** Whether the invalidation subscription is live (and the tier in use). */
  get live (): boolean {
    return this.#live
  }

  /** How many copies are held. */
  get size (): number {
    return this.#entries.size
  }

  /** Opens the subscription in the background; the tier serves once it is live. */
  start (): void {
    this.#subscriber = this.#open()
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#off()
    this.#subscriber?.disconnect()
  }

  /** The value of `key` when held and fresh. */
  get (key: string, now: number): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (now >= entry.until) {
      this.#remove(key, entry)
      return undefined
    }
    this.stats.hits++
    return entry.value
  }

  /** A read from Redis starts; pass the ticket to {@link end}. */
  begin (): number {
    this.#reading++
    return this.#seq
  }

  /**
   * A read that began with `ticket` ended: its value (undefined when none or failed) is kept
   * for `ttl`, or for the `left` ms Redis gave it when less, unless the key, one of `deps` or
   * the subscription changed since the read began.
   */
  end (key: string, ticket: number, value: V | undefined, left: number, now: number, deps: readonly string[] = []): void {
    const kept = value !== undefined && this.#live && left > 0 && this.#o.max > 0 && this.#reset <= ticket &&
      !this.#changedSince(key, ticket) && !deps.some((dep) => this.#changedSince(dep, ticket))
    // Checked before letting go of what came in while this read was in flight.
    if (this.#reading > 0 && --this.#reading === 0) this.#recent.clear()
    if (!kept) return
    const old = this.#entries.get(key)
    if (old !== undefined) this.#remove(key, old)
    else if (this.#entries.size >= this.#o.max) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#remove(oldest.value, this.#entries.get(oldest.value) as Entry<V>)
    }
    this.#entries.set(key, { value: value as V, until: now + Math.min(this.#o.ttl, left), deps })
    for (const dep of deps) {
      let set = this.#dependents.get(dep)
      if (set === undefined) this.#dependents.set(dep, set = new Set())
      set.add(key)
    }
  }

  /** Drops a key and the copies that depend on it (this instance changed it). */
  drop (key: string): void {
    const entry = this.#entries.get(key)
    if (entry !== undefined) this.#remove(key, entry)
    const dependents = this.#dependents.get(key)
    if (dependents === undefined) return
    this.#dependents.delete(key)
    for (const k of dependents) {
      const e = this.#entries.get(k)
      if (e !== undefined) this.#remove(k, e)
    }
  }

  /**
   * This instance is about to change `key` (or a dependency): its copy and the copies that
   * depend on it are dropped, and no read of it in flight now is kept.
   */
  changed (key: string): void {
    this.drop(key)
    if (this.#reading === 0) return
    if (this.#recent.size >= MAX_RECENT) return this.dropAll()
    this.#recent.set(key, ++this.#seq)
  }

  /** Drops everything, and keeps no read that is in flight. */
  dropAll (): void {
    this.#reset = ++this.#seq
    this.#recent.clear()
    this.#entries.clear()
    this.#dependents.clear()
  }

  #changedSince (key: string, ticket: number): boolean {
    return (this.#recent.get(key) ?? -1) > ticket
  }

  #remove (key: string, entry: Entry<V>): void {
    this.#entries.delete(key)
    for (const dep of entry.deps) {
      const set = this.#dependents.get(dep)
      set?.delete(key)
      if (set?.size === 0) this.#dependents.delete(dep)
    }
  }

  #invalidate (message: string): void {
    const space = message.indexOf(' ')
    if (space > 0 && message.slice(0, space) === this.origin) return
    const published = message.slice(space + 1)
    this.stats.invalidations++
    if (published === DROP_ALL) return this.dropAll()
    this.changed(published.startsWith(this.#keyPrefix) ? published.slice(this.#keyPrefix.length) : published)
  }

  #off (): void {
    if (this.#live && !this.#closed) this.#log(false, this.#lastError)
    this.#live = false
    this.dropAll()
  }

  #reopen (): void {
    setTimeout(() => {
      if (this.#closed) return
      this.#subscriber = this.#open()
    }, 100).unref()
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
      connectionName: this.#name,
      ...(cluster ? { retryStrategy: (times: number) => times > 3 ? null : 100 * times } : {})
    })
    sub.on('error', (err: unknown) => { this.#lastError = err }) // the next 'ready' (or another node) takes over
    sub.on('message', (_channel: string, message: string) => this.#invalidate(message))
    sub.on('close', () => this.#off())
    sub.on('ready', () => {
      sub.subscribe(this.#channel).then(() => {
        if (sub.status !== 'ready' || this.#closed) return
        this.dropAll() // reads sent before the subscription are not kept
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
