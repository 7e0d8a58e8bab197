// The memory engine's client: the part of ioredis's `Redis` interface the suite uses (commands
// and their `...Buffer` forms, pipelines, MULTI, defineCommand, pub/sub, duplicate, the
// connection events), over a MemoryServer in this process. Replies take ioredis's shapes and
// errors are ioredis's ReplyError, so the features cannot tell the engines apart.
import { EventEmitter } from 'node:events'
import { ReplyError } from 'ioredis'
import { MEMORY_COMMANDS, MemoryServer } from './server.js'
import type { Listener } from './server.js'
import { ReplyFailure, Status } from './reply.js'
import type { Reply } from './reply.js'

type Arg = string | number | Buffer | Arg[]
type Send = (args: Buffer[], buffers: boolean) => unknown

interface ScriptSpec { lua: string, numberOfKeys?: number | undefined }

/** Options of a memory client; the connection-related ioredis options given with them are accepted and have no effect. */
export interface MemoryClientOptions {
  /** Connect on first use (the suite's default) instead of at once. @default false */
  lazyConnect?: boolean
  [ioredisOption: string]: unknown
}

function toBuffers (args: Arg[], out: Buffer[] = []): Buffer[] {
  for (const a of args) {
    if (Array.isArray(a)) toBuffers(a, out)
    else out.push(Buffer.isBuffer(a) ? a : Buffer.from(String(a)))
  }
  return out
}

/** A reply in ioredis's shape: strings (or Buffers), numbers, null, arrays; an error reply as an Error. */
function shape (reply: Reply, buffers: boolean): unknown {
  if (reply === null || typeof reply === 'number') return reply
  if (Buffer.isBuffer(reply)) return buffers ? reply : reply.toString()
  if (reply instanceof Status) return buffers ? Buffer.from(reply.status) : reply.status
  if (reply instanceof ReplyFailure) return new ReplyError(reply.message) as Error
  return reply.map((r) => shape(r, buffers))
}

/** The methods every command gets, on a client and on its pipelines. */
function commandMethods (target: object, send: (self: any) => Send): void {
  for (const name of MEMORY_COMMANDS) {
    if (name in target) continue // the client's own quit()
    Object.defineProperty(target, name, { writable: true, configurable: true, value: function (this: unknown, ...args: Arg[]) { return send(this)(toBuffers([name, ...args]), false) } })
    Object.defineProperty(target, name + 'Buffer', { writable: true, configurable: true, value: function (this: unknown, ...args: Arg[]) { return send(this)(toBuffers([name, ...args]), true) } })
  }
  Object.defineProperty(target, 'call', { value: function (this: unknown, name: string, ...args: Arg[]) { return send(this)(toBuffers([name, ...args]), false) } })
  Object.defineProperty(target, 'callBuffer', { value: function (this: unknown, name: string, ...args: Arg[]) { return send(this)(toBuffers([name, ...args]), true) } })
}

/**
 * Runs one command on `client`; an error reply rejects, as with ioredis. Before the client is
 * ready the command waits for it, unless `enableOfflineQueue` is false (the suite's own setting).
 */
function sendNow (client: MemoryRedis, args: Buffer[], buffers: boolean): Promise<unknown> {
  if (client.status === 'connecting' && client.options.enableOfflineQueue !== false) return client.whenReady().then(() => sendNow(client, args, buffers))
  try {
    client.check()
  } catch (err) {
    return Promise.reject(err)
  }
  const reply = shape(client.run(args), buffers)
  if (reply instanceof Error) return Promise.reject(reply)
  // ioredis answers HGETALL as an object of field → value.
  if (Array.isArray(reply) && args[0]?.toString().toLowerCase() === 'hgetall') return Promise.resolve(pairsToObject(reply))
  return Promise.resolve(reply)
}

function pairsToObject (flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  // defineProperty: a field named __proto__ is an own key, never the object's prototype
  for (let i = 0; i < flat.length; i += 2) Object.defineProperty(out, String(flat[i]), { value: flat[i + 1], enumerable: true, writable: true, configurable: true })
  return out
}

/** Turns a defined script's call arguments into EVAL's: the keys first, then ARGV. */
function scriptArgs (spec: ScriptSpec, args: Arg[]): { keys: Buffer[], argv: Buffer[] } | ReplyFailure {
  const flat = toBuffers(args)
  let numberOfKeys = spec.numberOfKeys
  if (numberOfKeys === undefined) {
    numberOfKeys = Number(flat.shift()?.toString())
    if (!Number.isInteger(numberOfKeys) || numberOfKeys < 0 || numberOfKeys > flat.length) return new ReplyFailure('ERR value is not an integer or out of range')
  }
  return { keys: flat.slice(0, numberOfKeys), argv: flat.slice(numberOfKeys) }
}

const SCRIPT = Buffer.from('\0script')

/** An in-process stand-in for an ioredis `Redis` client (see the file's header). */
export class MemoryRedis extends EventEmitter {
  readonly isCluster = false
  readonly options: MemoryClientOptions & { host: string, port: number }
  status: 'wait' | 'connecting' | 'ready' | 'end' = 'wait'
  readonly #server: MemoryServer
  readonly #scripts = new Map<string, ScriptSpec>()
  readonly #channels = new Set<string>()
  readonly #listener: Listener = {
    deliver: (channel, message) => {
      if (this.status !== 'ready') return
      this.emit('messageBuffer', channel, message)
      this.emit('message', channel.toString(), message.toString())
    },
    kill: () => this.disconnect()
  }

  constructor (name: string, options: MemoryClientOptions = {}) {
    super()
    this.#server = MemoryServer.named(name)
    this.options = { ...options, host: `memory://${name}`, port: 0 }
    if (options.lazyConnect !== true) this.connect().catch((err: unknown) => this.emit('error', err))
  }

  /** The `memory://` name of the keyspace this client works on. */
  get serverName (): string { return this.#server.name }

  async connect (): Promise<void> {
    if (this.status === 'ready' || this.status === 'connecting') throw new Error('Redis is already connecting/connected')
    this.status = 'connecting'
    try {
      await this.#server.open()
    } catch (err) {
      if (this.status === 'connecting') this.status = 'wait' // the Lua VM did not load: a later connect() tries again
      throw err
    }
    if (this.status !== 'connecting') { // closed meanwhile: give back the open it counted
      this.#server.close()
      return
    }
    this.status = 'ready'
    this.emit('connect')
    this.emit('ready')
  }

  async quit (): Promise<'OK'> {
    this.disconnect()
    return 'OK'
  }

  disconnect (_reconnect?: boolean): void {
    if (this.status === 'end') return
    const wasOpen = this.status === 'ready'
    this.status = 'end'
    for (const channel of this.#channels) this.#server.unsubscribe(channel, this.#listener)
    this.#channels.clear()
    if (wasOpen) this.#server.close()
    process.nextTick(() => { this.emit('close'); this.emit('end') })
  }

  /** A new client on the same keyspace (ioredis's `duplicate`). */
  duplicate (override: MemoryClientOptions = {}): MemoryRedis {
    return new MemoryRedis(this.#server.name, { ...this.options, ...override })
  }

  defineCommand (name: string, spec: ScriptSpec): void {
    this.#scripts.set(name, { lua: spec.lua, numberOfKeys: spec.numberOfKeys })
    Object.defineProperty(this, name, { configurable: true, value: (...args: Arg[]) => sendNow(this, [SCRIPT, Buffer.from(name), ...toBuffers(args)], false) })
    Object.defineProperty(this, name + 'Buffer', { configurable: true, value: (...args: Arg[]) => sendNow(this, [SCRIPT, Buffer.from(name), ...toBuffers(args)], true) })
  }

  async subscribe (...channels: Arg[]): Promise<number> {
    await this.#whenReady()
    this.#check()
    for (const c of toBuffers(channels)) {
      const channel = c.toString('latin1')
      this.#channels.add(channel)
      this.#server.subscribe(channel, this.#listener)
    }
    return this.#channels.size
  }

  async unsubscribe (...channels: Arg[]): Promise<number> {
    const names = channels.length === 0 ? [...this.#channels] : toBuffers(channels).map((c) => c.toString('latin1'))
    for (const channel of names) {
      this.#channels.delete(channel)
      this.#server.unsubscribe(channel, this.#listener)
    }
    return this.#channels.size
  }

  /** MONITOR: a new connection that emits 'monitor' (time, args, source) for every command on this keyspace. */
  async monitor (): Promise<MemoryRedis> {
    const watcher = new MemoryRedis(this.#server.name, { lazyConnect: true })
    await watcher.connect()
    const stop = this.#server.monitor((time, args, source) => { if (watcher.status === 'ready') watcher.emit('monitor', time, args, source) })
    watcher.once('end', stop)
    return watcher
  }

  /** A pipeline: commands queue, `exec()` runs them in order and answers `[error, result]` pairs. */
  pipeline (): MemoryPipeline {
    return new MemoryPipeline(this)
  }

  /** MULTI: the queued commands run as one step (nothing else runs in between, as on one thread). */
  multi (): MemoryPipeline {
    return new MemoryPipeline(this)
  }

  /** Runs one command (or a defined script) and answers the raw reply. @internal */
  run (args: Buffer[]): Reply {
    if (args[0] === SCRIPT) {
      const name = (args[1] as Buffer).toString()
      const spec = this.#scripts.get(name) as ScriptSpec
      const parsed = scriptArgs(spec, args.slice(2))
      return parsed instanceof ReplyFailure ? parsed : this.#server.runScript(spec.lua, parsed.keys, parsed.argv)
    }
    const name = args[0]?.toString().toLowerCase()
    if (name === 'subscribe' || name === 'unsubscribe') return new ReplyFailure(`ERR call ${name} as a method on the memory engine`)
    return this.#server.exec(args)
  }

  /** Throws as ioredis does when a command is sent on a client that is not ready (its offline queue is off). @internal */
  check (): void { this.#check() }

  /** Waits for 'ready' while connecting, unless the offline queue is off (then commands fail at once, as with ioredis). */
  async #whenReady (): Promise<void> {
    if (this.status === 'connecting' && this.options.enableOfflineQueue !== false) await new Promise((resolve) => this.once('ready', resolve))
  }

  /** @internal */
  whenReady (): Promise<void> { return this.#whenReady() }

  #check (): void {
    if (this.status !== 'ready') throw new Error(this.status === 'end' ? 'Connection is closed.' : "Stream isn't writeable and enableOfflineQueue options is false")
  }

  /** Names of the scripts defined on this client. @internal */
  scriptNames (): IterableIterator<string> { return this.#scripts.keys() }
}
commandMethods(MemoryRedis.prototype, (self: MemoryRedis) => (args, buffers) => sendNow(self, args, buffers))

/** A queue of commands for {@link MemoryRedis.pipeline} and {@link MemoryRedis.multi}. */
export class MemoryPipeline {
  readonly #client: MemoryRedis
  readonly #queue: Array<{ args: Buffer[], buffers: boolean }> = []

  constructor (client: MemoryRedis) {
    this.#client = client
    for (const name of client.scriptNames()) {
      Object.defineProperty(this, name, { value: (...args: Arg[]) => this.#add([SCRIPT, Buffer.from(name), ...toBuffers(args)], false) })
      Object.defineProperty(this, name + 'Buffer', { value: (...args: Arg[]) => this.#add([SCRIPT, Buffer.from(name), ...toBuffers(args)], true) })
    }
  }

  get length (): number { return this.#queue.length }

  /** Queues a command. @internal */
  add (args: Buffer[], buffers: boolean): this { return this.#add(args, buffers) }

  #add (args: Buffer[], buffers: boolean): this {
    this.#queue.push({ args, buffers })
    return this
  }

  async exec (): Promise<Array<[Error | null, unknown]>> {
    const client = this.#client
    await client.whenReady()
    client.check()
    return this.#queue.splice(0).map(({ args, buffers }) => {
      const reply = shape(client.run(args), buffers)
      return reply instanceof Error ? [reply, null] : [null, reply]
    })
  }
}
commandMethods(MemoryPipeline.prototype, (self: MemoryPipeline) => (args, buffers) => self.add(args, buffers))
