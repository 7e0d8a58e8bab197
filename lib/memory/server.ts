// The memory engine's "server": one keyspace with TTLs, pub/sub and scripts, shared by every
// client of the same `memory://name` in this process. It implements the commands the suite
// sends (and the common ones around them) with Redis's replies and errors; scripts run in
// the Lua VM of lua.ts, so the suite's scripts are the same source on both engines.
import { createHash } from 'node:crypto'
import { LuaVm } from './lua.js'
import { failure, OK, ReplyFailure, Status } from './reply.js'
import type { Reply } from './reply.js'

type Value =
  | { type: 'string', v: Buffer }
  | { type: 'hash', v: Map<string, Buffer> }
  | { type: 'zset', v: Map<string, number> }

type ValueOf<T extends Value['type']> = { string: Buffer, hash: Map<string, Buffer>, zset: Map<string, number> }[T]

interface Entry { value: Value, expiresAt: number }

/** A subscriber: gets each message published on a channel it listens to. */
export interface Listener {
  deliver: (channel: Buffer, message: Buffer) => void
  /** Its connection is closed by CLIENT KILL TYPE pubsub. */
  kill: () => void
}

type Handler = (server: MemoryServer, args: Buffer[]) => Reply

/** A MONITOR listener: the time, a command's arguments and where it came from. */
export type Monitor = (time: string, args: string[], source: string) => void

const WRONGTYPE = failure('WRONGTYPE Operation against a key holding the wrong kind of value')
const NOT_INTEGER = failure('ERR value is not an integer or out of range')
const SYNTAX = failure('ERR syntax error')

/** The version INFO reports: the Redis behaviour the engine follows. */
export const MEMORY_ENGINE_VERSION = '7.0.0'

const servers = new Map<string, MemoryServer>()

export class MemoryServer {
  readonly name: string
  readonly #data = new Map<string, Entry>()
  readonly #channels = new Map<string, Set<Listener>>()
  readonly #scripts = new Map<string, string>()
  readonly #stats = new Map<string, number>()
  readonly #monitors = new Set<Monitor>()
  readonly #scans = new Map<number, { keys: string[], offset: number, at: number }>()
  #nextScan = 1
  #vm: LuaVm | undefined
  /** The time a running script started: as in Redis, keys do not expire while a script runs. */
  #frozen: number | undefined
  #opening: Promise<LuaVm> | undefined
  #sweeper: NodeJS.Timeout | undefined
  #clients = 0

  private constructor (name: string) { this.name = name }

  /** The server called `name` in this process, made on first use. */
  static named (name: string): MemoryServer {
    let server = servers.get(name)
    if (server === undefined) servers.set(name, server = new MemoryServer(name))
    return server
  }

  /** A client opens: the Lua VM is loaded (once) and expired keys are swept while clients are open. */
  async open (): Promise<void> {
    this.#opening ??= LuaVm.open().then((vm) => { this.#vm = vm; return vm }, (err: unknown) => {
      this.#opening = undefined // the next open tries again
      throw err
    })
    await this.#opening
    if (this.#clients++ === 0) {
      this.#sweeper = setInterval(() => this.#sweep(), 1000)
      this.#sweeper.unref()
    }
  }

  /** A client closes; the keyspace stays (like a server's) for the clients still to come. */
  close (): void {
    if (this.#clients > 0 && --this.#clients === 0) clearInterval(this.#sweeper)
  }

  /** The keyspace's clock in ms: frozen at a script's start while it runs. */
  now (): number {
    return this.#frozen ?? Date.now()
  }

  /** Runs one command (`args[0]` is its name). Never throws: an error is a ReplyFailure. */
  exec (args: Buffer[], source = '127.0.0.1:0'): Reply {
    if (this.#monitors.size > 0) this.#tell(args, source)
    const name = (args[0] ?? Buffer.alloc(0)).toString().toLowerCase()
    const handler = COMMANDS[name]
    if (handler === undefined) return failure(`ERR unknown command '${name}' (the memory engine does not implement it)`)
    this.#stats.set(name, (this.#stats.get(name) ?? 0) + 1)
    try {
      return handler(this, args)
    } catch (err) {
      // A defect of the engine answers as an error reply, never as a throw from inside a script.
      return failure(`ERR the memory engine failed on '${name}': ${(err as Error).message}`)
    }
  }

  /** Runs a script by its source (what ioredis's defineCommand does with EVALSHA), counted as an EVALSHA. */
  runScript (lua: string, keys: Buffer[], argv: Buffer[]): Reply {
    this.#stats.set('evalsha', (this.#stats.get('evalsha') ?? 0) + 1)
    const sha = this.#remember(lua)
    if (this.#monitors.size > 0) this.#tell([Buffer.from('evalsha'), Buffer.from(sha), Buffer.from(String(keys.length)), ...keys, ...argv], '127.0.0.1:0')
    return this.#run(sha, keys, argv)
  }

  /** MONITOR: `monitor` sees every command from now on (those a script runs with source 'lua'); the returned function stops it. */
  monitor (monitor: Monitor): () => void {
    this.#monitors.add(monitor)
    return () => this.#monitors.delete(monitor)
  }

  #tell (args: Buffer[], source: string): void {
    const time = (Date.now() / 1000).toFixed(6)
    const text = args.map((a) => a.toString())
    for (const m of this.#monitors) process.nextTick(m, time, text, source)
  }

  subscribe (channel: string, listener: Listener): void {
    let set = this.#channels.get(channel)
    if (set === undefined) this.#channels.set(channel, set = new Set())
    set.add(listener)
  }

  unsubscribe (channel: string, listener: Listener): void {
    const set = this.#channels.get(channel)
    if (set === undefined) return
    set.delete(listener)
    if (set.size === 0) this.#channels.delete(channel)
  }

  /** Closes every subscribed connection (they reconnect, as ioredis clients do); how many. */
  killSubscribers (): number {
    const listeners = new Set<Listener>()
    for (const set of this.#channels.values()) for (const l of set) listeners.add(l)
    for (const l of listeners) l.kill()
    return listeners.size
  }

  // ---- keyspace -------------------------------------------------------------------------

  /** The live entry of `key`, dropping it when it has expired. */
  entry (key: string): Entry | undefined {
    const e = this.#data.get(key)
    if (e === undefined) return undefined
    if (e.expiresAt !== 0 && e.expiresAt <= this.now()) {
      this.#data.delete(key)
      return undefined
    }
    return e
  }

  /** `key`'s value when it has `type`, undefined when absent, WRONGTYPE otherwise. */
  typed<T extends Value['type']> (key: string, type: T): ValueOf<T> | undefined | ReplyFailure {
    const e = this.entry(key)
    if (e === undefined) return undefined
    if (e.value.type !== type) return WRONGTYPE
    return e.value.v as ValueOf<T>
  }

  put (key: string, value: Value, expiresAt: number): void {
    this.#data.set(key, { value, expiresAt })
  }

  remove (key: string): boolean {
    return this.entry(key) !== undefined && this.#data.delete(key)
  }

  keys (): string[] {
    const out: string[] = []
    for (const key of this.#data.keys()) if (this.entry(key) !== undefined) out.push(key)
    return out
  }

  flush (): void { this.#data.clear() }

  /**
   * One SCAN page of `count` keys. Cursor 0 takes a snapshot of the key names; later cursors
   * page through it, skipping keys deleted since. As with Redis, a key present for the whole
   * scan is returned, and the scan ends when the returned cursor is 0. An unknown cursor (a
   * scan abandoned for over a minute) ends the scan.
   */
  scanPage (cursor: number, count: number): { next: number, keys: string[] } {
    const now = Date.now()
    for (const [id, scan] of this.#scans) if (scan.at < now - 60_000) this.#scans.delete(id)
    let scan = cursor === 0 ? undefined : this.#scans.get(cursor)
    if (cursor === 0) scan = { keys: [...this.#data.keys()], offset: 0, at: now }
    if (scan === undefined) return { next: 0, keys: [] }
    this.#scans.delete(cursor)
    const page = scan.keys.slice(scan.offset, scan.offset + count).filter((k) => this.entry(k) !== undefined)
    scan.offset += count
    if (scan.offset >= scan.keys.length) return { next: 0, keys: page }
    scan.at = now
    const next = this.#nextScan++
    this.#scans.set(next, scan)
    return { next, keys: page }
  }

  publish (channel: Buffer, message: Buffer): number {
    const set = this.#channels.get(channel.toString('latin1'))
    if (set === undefined) return 0
    // Delivered after the command (and its script) has finished, in publish order, like a socket.
    for (const listener of set) process.nextTick(() => listener.deliver(channel, message))
    return set.size
  }

  info (section: string): string {
    const lines = ['# Server', `redis_version:${MEMORY_ENGINE_VERSION}`, 'redis_mode:standalone', 'engine:fastify-redis-suite memory', '',
      '# Replication', 'role:master', '', '# Memory', `used_memory:${this.#bytes()}`, '']
    if (section === '' || section === 'all' || section === 'keyspace') lines.push('# Keyspace', `db0:keys=${this.keys().length},expires=0,avg_ttl=0`, '')
    if (section === 'all' || section === 'commandstats') {
      lines.push('# Commandstats')
      for (const [name, calls] of this.#stats) lines.push(`cmdstat_${name}:calls=${calls},usec=0,usec_per_call=0.00`)
      lines.push('')
    }
    return lines.join('\r\n')
  }

  /** Roughly what the keyspace holds, in bytes (keys and values; not the engine's own overhead). */
  #bytes (): number {
    let n = 0
    for (const [key, e] of this.#data) {
      n += key.length
      const v = e.value
      if (v.type === 'string') n += v.v.length
      else if (v.type === 'hash') for (const [f, x] of v.v) n += f.length + x.length
      else for (const m of v.v.keys()) n += m.length + 8
    }
    return n
  }

  scriptCommand (args: Buffer[]): Reply {
    const sub = args[1]?.toString().toLowerCase()
    if (sub === 'load' && args[2] !== undefined) {
      const sha = this.#remember(args[2].toString())
      const compiled = this.#vmOrFail().define(sha, args[2].toString())
      return compiled ?? Buffer.from(sha)
    }
    if (sub === 'exists') return args.slice(2).map((sha) => this.#scripts.has(sha.toString().toLowerCase()) ? 1 : 0)
    if (sub === 'flush') { this.#scripts.clear(); return OK }
    return failure(`ERR unknown subcommand or wrong number of arguments for 'script|${sub ?? ''}'`)
  }

  eval (args: Buffer[], bySha: boolean): Reply {
    const source = args[1]?.toString() ?? ''
    const numkeys = Number(args[2]?.toString())
    if (!Number.isInteger(numkeys) || numkeys < 0) return failure('ERR value is not an integer or out of range')
    if (numkeys > args.length - 3) return failure("ERR Number of keys can't be greater than number of args")
    const sha = bySha ? source.toLowerCase() : this.#remember(source)
    if (!this.#scripts.has(sha)) return failure('NOSCRIPT No matching script. Please use EVAL.')
    return this.#run(sha, args.slice(3, 3 + numkeys), args.slice(3 + numkeys))
  }

  #remember (lua: string): string {
    const sha = createHash('sha1').update(lua).digest('hex')
    if (!this.#scripts.has(sha)) this.#scripts.set(sha, lua)
    return sha
  }

  #run (sha: string, keys: Buffer[], argv: Buffer[]): Reply {
    const vm = this.#vmOrFail()
    const compiled = vm.define(sha, this.#scripts.get(sha) as string)
    if (compiled !== undefined) return compiled
    this.#frozen = Date.now()
    try {
      return vm.run(sha, keys, argv, (args) => {
        const name = args[0]?.toString().toLowerCase() ?? ''
        if (NOT_IN_SCRIPTS.has(name)) return failure('ERR This Redis command is not allowed from script')
        return this.exec(args, 'lua')
      })
    } finally {
      this.#frozen = undefined
    }
  }

  #vmOrFail (): LuaVm {
    if (this.#vm === undefined) throw new Error('the memory engine was used before a client connected')
    return this.#vm
  }

  #sweep (): void {
    const now = Date.now()
    for (const [key, e] of this.#data) if (e.expiresAt !== 0 && e.expiresAt <= now) this.#data.delete(key)
  }
}

const NOT_IN_SCRIPTS = new Set(['eval', 'evalsha', 'script', 'subscribe', 'unsubscribe', 'psubscribe', 'multi', 'exec', 'watch'])

// ---- argument helpers ---------------------------------------------------------------------

function keyOf (b: Buffer | undefined): string { return (b ?? Buffer.alloc(0)).toString('latin1') }
function text (b: Buffer | undefined): string { return (b ?? Buffer.alloc(0)).toString().toLowerCase() }

/** An integer argument (Redis's strict parse), or undefined. */
function int (b: Buffer | undefined): number | undefined {
  const s = b?.toString()
  if (s === undefined || !/^-?\d{1,19}$/.test(s)) return undefined
  const n = Number(s)
  return Number.isSafeInteger(n) ? n : undefined
}

/** A score argument: a float, `-inf`, `+inf`, optionally exclusive with `(`. */
function score (b: Buffer | undefined): { value: number, exclusive: boolean } | undefined {
  let s = b?.toString() ?? ''
  const exclusive = s.startsWith('(')
  if (exclusive) s = s.slice(1)
  const value = /^[+]?inf$/i.test(s) ? Infinity : /^-inf$/i.test(s) ? -Infinity : Number(s)
  if (s === '' || Number.isNaN(value)) return undefined
  return { value, exclusive }
}

function arity (args: Buffer[], min: number): ReplyFailure | undefined {
  return args.length < min ? failure(`ERR wrong number of arguments for '${text(args[0])}' command`) : undefined
}

/** Redis's glob (`*`, `?`, `[...]`, `\` escapes) as a RegExp. */
export function globToRegExp (glob: string): RegExp {
  let out = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string
    if (c === '\\' && i + 1 < glob.length) out += escapeRe(glob[++i] as string)
    else if (c === '*') out += '[\\s\\S]*'
    else if (c === '?') out += '[\\s\\S]'
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1)
      if (end === -1) { out += '\\['; continue }
      let cls = glob.slice(i + 1, end)
      const negate = cls.startsWith('^')
      if (negate) cls = cls.slice(1)
      out += '[' + (negate ? '^' : '') + cls.replace(/\\(.)/g, '$1').replace(/[\]\\^]/g, '\\$&') + ']'
      i = end
    } else out += escapeRe(c)
  }
  return new RegExp('^' + out + '$')
}

function escapeRe (c: string): string { return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') }

function str (server: MemoryServer, key: string): Buffer | undefined | ReplyFailure {
  return server.typed(key, 'string')
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/** A signed 64-bit integer argument, as Redis parses one, or undefined. */
function int64 (b: Buffer | undefined): bigint | undefined {
  const s = b?.toString()
  if (s === undefined || !/^(0|-?[1-9]\d{0,18})$/.test(s)) return undefined
  const n = BigInt(s)
  return n < INT64_MIN || n > INT64_MAX ? undefined : n
}

function incrBy (server: MemoryServer, key: string, by: bigint | undefined): Reply {
  if (by === undefined) return NOT_INTEGER
  const current = str(server, key)
  if (current instanceof ReplyFailure) return current
  const n = current === undefined ? 0n : int64(current)
  if (n === undefined) return NOT_INTEGER
  const next = n + by
  if (next < INT64_MIN || next > INT64_MAX) return failure('ERR increment or decrement would overflow')
  const e = server.entry(key)
  server.put(key, { type: 'string', v: Buffer.from(String(next)) }, e?.expiresAt ?? 0)
  return Number(next)
}

function setExpiry (server: MemoryServer, args: Buffer[], unitMs: number): Reply {
  const key = keyOf(args[1])
  const n = int(args[2])
  if (n === undefined) return NOT_INTEGER
  const e = server.entry(key)
  if (e === undefined) return 0
  const at = server.now() + n * unitMs
  const flag = text(args[3])
  if ((flag === 'nx' && e.expiresAt !== 0) || (flag === 'xx' && e.expiresAt === 0) ||
    (flag === 'gt' && (e.expiresAt === 0 || at <= e.expiresAt)) || (flag === 'lt' && e.expiresAt !== 0 && at >= e.expiresAt)) return 0
  if (n * unitMs <= 0) { server.remove(key); return 1 }
  e.expiresAt = at
  return 1
}

function ttl (server: MemoryServer, key: string, unitMs: number): Reply {
  const e = server.entry(key)
  if (e === undefined) return -2
  if (e.expiresAt === 0) return -1
  // Judged by the script's start time (the key is still there), counted by the clock: as Redis 7 does, 0 at the least.
  const left = Math.max(0, e.expiresAt - Date.now())
  return unitMs === 1 ? left : Math.round(left / unitMs)
}

/** HDEL and ZREM: removes the fields (members) named after the key; an emptied key goes. */
function removeMembers (server: MemoryServer, args: Buffer[], type: 'hash' | 'zset'): Reply {
  const key = keyOf(args[1])
  const map = server.typed(key, type)
  if (map instanceof ReplyFailure) return map
  if (map === undefined) return 0
  const n = args.slice(2).reduce((c, f) => c + (map.delete(keyOf(f)) ? 1 : 0), 0)
  if (map.size === 0) server.remove(key)
  return n
}

function sortedMembers (z: Map<string, number>): Array<[string, number]> {
  return [...z].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

/** Redis's range indexes (negative from the end) clamped to `len`: [start, stop] inclusive, or undefined when empty. */
function rangeOf (len: number, startArg: Buffer | undefined, stopArg: Buffer | undefined): [number, number] | undefined | ReplyFailure {
  let start = int(startArg)
  let stop = int(stopArg)
  if (start === undefined || stop === undefined) return NOT_INTEGER
  if (start < 0) start = Math.max(len + start, 0)
  if (stop < 0) stop = len + stop
  if (stop >= len) stop = len - 1
  if (start > stop || start >= len) return undefined
  return [start, stop]
}

function inScore (s: number, min: { value: number, exclusive: boolean }, max: { value: number, exclusive: boolean }): boolean {
  return (min.exclusive ? s > min.value : s >= min.value) && (max.exclusive ? s < max.value : s <= max.value)
}

function formatScore (s: number): Buffer {
  return Buffer.from(s === Infinity ? 'inf' : s === -Infinity ? '-inf' : String(s))
}

// ---- the commands -------------------------------------------------------------------------

const COMMANDS: Record<string, Handler> = {
  ping: (_s, args) => args[1] ?? new Status('PONG'),
  echo: (_s, args) => arity(args, 2) ?? args[1] as Buffer,
  time: () => {
    const us = Math.floor((performance.timeOrigin + performance.now()) * 1000)
    return [Buffer.from(String(Math.floor(us / 1e6))), Buffer.from(String(us % 1e6))]
  },
  info: (s, args) => Buffer.from(s.info(text(args[1]))),
  dbsize: (s) => s.keys().length,
  flushall: (s) => { s.flush(); return OK },
  flushdb: (s) => { s.flush(); return OK },
  select: (_s, args) => int(args[1]) === 0 ? OK : failure('ERR DB index is out of range'),
  client: (s, args) => {
    const sub = text(args[1])
    if (sub === 'kill') return text(args[2]) === 'type' && text(args[3]) === 'pubsub' ? s.killSubscribers() : failure('ERR the memory engine supports CLIENT KILL TYPE pubsub only')
    if (sub === 'id') return 1
    if (sub === 'getname') return null
    if (sub === 'setname') return OK
    return failure(`ERR the memory engine does not implement CLIENT ${sub.toUpperCase()}`)
  },
  quit: () => OK,
  type: (s, args) => new Status(s.entry(keyOf(args[1]))?.value.type ?? 'none'),

  get: (s, args) => arity(args, 2) ?? str(s, keyOf(args[1])) ?? null,
  getdel: (s, args) => {
    const key = keyOf(args[1])
    const v = str(s, key)
    if (v instanceof ReplyFailure) return v
    if (v !== undefined) s.remove(key)
    return v ?? null
  },
  mget: (s, args) => args.slice(1).map((k) => { const v = s.entry(keyOf(k)); return v?.value.type === 'string' ? v.value.v : null }),
  set: (s, args) => {
    const bad = arity(args, 3)
    if (bad !== undefined) return bad
    const key = keyOf(args[1])
    let expiresAt = 0
    let nx = false; let xx = false; let keep = false; let get = false
    for (let i = 3; i < args.length; i++) {
      const opt = text(args[i])
      if (opt === 'nx') nx = true
      else if (opt === 'xx') xx = true
      else if (opt === 'keepttl') keep = true
      else if (opt === 'get') get = true
      else if (opt === 'px' || opt === 'ex' || opt === 'pxat' || opt === 'exat') {
        if (expiresAt !== 0 || keep || i + 1 >= args.length) return SYNTAX
        const n = int(args[++i])
        if (n === undefined) return NOT_INTEGER
        if (n <= 0) return failure("ERR invalid expire time in 'set' command")
        expiresAt = opt === 'px' ? s.now() + n : opt === 'ex' ? s.now() + n * 1000 : opt === 'pxat' ? n : n * 1000
      } else return SYNTAX
    }
    if ((nx && xx) || (keep && expiresAt !== 0)) return SYNTAX
    const e = s.entry(key)
    if (get && e !== undefined && e.value.type !== 'string') return WRONGTYPE
    const old = e?.value.type === 'string' ? e.value.v : null
    if ((nx && e !== undefined) || (xx && e === undefined)) return get ? old : null
    s.put(key, { type: 'string', v: Buffer.from(args[2] as Buffer) }, keep && e !== undefined ? e.expiresAt : expiresAt)
    return get ? old : OK
  },
  del: (s, args) => arity(args, 2) ?? args.slice(1).reduce((n, k) => n + (s.remove(keyOf(k)) ? 1 : 0), 0),
  unlink: (s, args) => arity(args, 2) ?? args.slice(1).reduce((n, k) => n + (s.remove(keyOf(k)) ? 1 : 0), 0),
  exists: (s, args) => arity(args, 2) ?? args.slice(1).reduce((n, k) => n + (s.entry(keyOf(k)) !== undefined ? 1 : 0), 0),
  expire: (s, args) => arity(args, 3) ?? setExpiry(s, args, 1000),
  pexpire: (s, args) => arity(args, 3) ?? setExpiry(s, args, 1),
  persist: (s, args) => {
    const e = s.entry(keyOf(args[1]))
    if (e === undefined || e.expiresAt === 0) return 0
    e.expiresAt = 0
    return 1
  },
  ttl: (s, args) => ttl(s, keyOf(args[1]), 1000),
  pttl: (s, args) => ttl(s, keyOf(args[1]), 1),
  incr: (s, args) => incrBy(s, keyOf(args[1]), 1n),
  decr: (s, args) => incrBy(s, keyOf(args[1]), -1n),
  incrby: (s, args) => incrBy(s, keyOf(args[1]), int64(args[2])),
  decrby: (s, args) => { const by = int64(args[2]); return incrBy(s, keyOf(args[1]), by === undefined || by === INT64_MIN ? undefined : -by) },

  hset: (s, args) => {
    if (args.length < 4 || args.length % 2 !== 0) return failure("ERR wrong number of arguments for 'hset' command")
    const key = keyOf(args[1])
    let h = s.typed(key, 'hash')
    if (h instanceof ReplyFailure) return h
    if (h === undefined) { h = new Map(); s.put(key, { type: 'hash', v: h }, 0) }
    let added = 0
    for (let i = 2; i < args.length; i += 2) {
      const field = keyOf(args[i])
      if (!h.has(field)) added++
      h.set(field, Buffer.from(args[i + 1] as Buffer))
    }
    return added
  },
  hget: (s, args) => {
    const h = s.typed(keyOf(args[1]), 'hash')
    if (h instanceof ReplyFailure) return h
    return h?.get(keyOf(args[2])) ?? null
  },
  hmget: (s, args) => {
    const h = s.typed(keyOf(args[1]), 'hash')
    if (h instanceof ReplyFailure) return h
    return args.slice(2).map((f) => h?.get(keyOf(f)) ?? null)
  },
  hgetall: (s, args) => {
    const h = s.typed(keyOf(args[1]), 'hash')
    if (h instanceof ReplyFailure) return h
    return [...(h ?? [])].flatMap(([f, v]) => [Buffer.from(f, 'latin1'), v])
  },
  hdel: (s, args) => removeMembers(s, args, 'hash'),
  hincrby: (s, args) => {
    const key = keyOf(args[1])
    const by = int(args[3])
    if (by === undefined) return NOT_INTEGER
    let h = s.typed(key, 'hash')
    if (h instanceof ReplyFailure) return h
    if (h === undefined) { h = new Map(); s.put(key, { type: 'hash', v: h }, 0) }
    const field = keyOf(args[2])
    const current = h.get(field)
    const n = current === undefined ? 0 : int(current)
    if (n === undefined) return failure('ERR hash value is not an integer')
    h.set(field, Buffer.from(String(n + by)))
    return n + by
  },

  zadd: (s, args) => {
    const key = keyOf(args[1])
    let i = 2
    const flags = new Set<string>()
    while (i < args.length && ['nx', 'xx', 'gt', 'lt', 'ch'].includes(text(args[i]))) flags.add(text(args[i++]))
    if (i >= args.length || (args.length - i) % 2 !== 0) return SYNTAX
    const pairs: Array<[number, string]> = []
    for (; i < args.length; i += 2) {
      const sc = score(args[i])
      if (sc === undefined || sc.exclusive) return failure('ERR value is not a valid float')
      pairs.push([sc.value, keyOf(args[i + 1])])
    }
    let z = s.typed(key, 'zset')
    if (z instanceof ReplyFailure) return z
    if (z === undefined) { z = new Map(); s.put(key, { type: 'zset', v: z }, 0) }
    let changed = 0
    for (const [sc, member] of pairs) {
      const old = z.get(member)
      if ((flags.has('nx') && old !== undefined) || (flags.has('xx') && old === undefined)) continue
      if (old !== undefined && ((flags.has('gt') && sc <= old) || (flags.has('lt') && sc >= old))) continue
      if (old === undefined || (flags.has('ch') && old !== sc)) changed++
      z.set(member, sc)
    }
    if (z.size === 0) s.remove(key)
    return changed
  },
  zcard: (s, args) => {
    const z = s.typed(keyOf(args[1]), 'zset')
    if (z instanceof ReplyFailure) return z
    return z?.size ?? 0
  },
  zscore: (s, args) => {
    const z = s.typed(keyOf(args[1]), 'zset')
    if (z instanceof ReplyFailure) return z
    const sc = z?.get(keyOf(args[2]))
    return sc === undefined ? null : formatScore(sc)
  },
  zrem: (s, args) => removeMembers(s, args, 'zset'),
  zrange: (s, args) => {
    const z = s.typed(keyOf(args[1]), 'zset')
    if (z instanceof ReplyFailure) return z
    const withScores = text(args[4]) === 'withscores'
    if (args.length > (withScores ? 5 : 4)) return failure('ERR the memory engine supports ZRANGE key start stop [WITHSCORES] only')
    const members = sortedMembers(z ?? new Map())
    const range = rangeOf(members.length, args[2], args[3])
    if (range instanceof ReplyFailure) return range
    if (range === undefined) return []
    return members.slice(range[0], range[1] + 1).flatMap(([m, sc]) => withScores ? [Buffer.from(m, 'latin1'), formatScore(sc)] : [Buffer.from(m, 'latin1')])
  },
  zremrangebyrank: (s, args) => {
    const key = keyOf(args[1])
    const z = s.typed(key, 'zset')
    if (z instanceof ReplyFailure) return z
    if (z === undefined) return 0
    const members = sortedMembers(z)
    const range = rangeOf(members.length, args[2], args[3])
    if (range instanceof ReplyFailure) return range
    if (range === undefined) return 0
    for (const [m] of members.slice(range[0], range[1] + 1)) z.delete(m)
    if (z.size === 0) s.remove(key)
    return range[1] - range[0] + 1
  },
  zremrangebyscore: (s, args) => {
    const key = keyOf(args[1])
    const min = score(args[2])
    const max = score(args[3])
    if (min === undefined || max === undefined) return failure('ERR min or max is not a float')
    const z = s.typed(key, 'zset')
    if (z instanceof ReplyFailure) return z
    if (z === undefined) return 0
    let n = 0
    for (const [m, sc] of z) if (inScore(sc, min, max)) { z.delete(m); n++ }
    if (z.size === 0) s.remove(key)
    return n
  },

  publish: (s, args) => arity(args, 3) ?? s.publish(args[1] as Buffer, args[2] as Buffer),
  scan: (s, args) => {
    const cursor = int(args[1])
    if (cursor === undefined || cursor < 0) return failure('ERR invalid cursor')
    let match: RegExp | undefined
    let type: string | undefined
    let count = 10
    for (let i = 2; i < args.length; i += 2) {
      const opt = text(args[i])
      if (i + 1 >= args.length) return SYNTAX
      if (opt === 'match') match = globToRegExp(keyOf(args[i + 1]))
      else if (opt === 'type') type = text(args[i + 1])
      else if (opt === 'count') {
        const n = int(args[i + 1])
        if (n === undefined || n < 1) return SYNTAX
        count = n
      } else return SYNTAX
    }
    const { next, keys } = s.scanPage(cursor, count)
    return [Buffer.from(String(next)), keys.filter((k) => (match === undefined || match.test(k)) && (type === undefined || s.entry(k)?.value.type === type)).map((k) => Buffer.from(k, 'latin1'))]
  },
  keys: (s, args) => {
    const match = globToRegExp(keyOf(args[1]))
    return s.keys().filter((k) => match.test(k)).map((k) => Buffer.from(k, 'latin1'))
  },
  script: (s, args) => s.scriptCommand(args),
  eval: (s, args) => arity(args, 3) ?? s.eval(args, false),
  evalsha: (s, args) => arity(args, 3) ?? s.eval(args, true)
}

/** The commands the engine implements, in lower case. */
export const MEMORY_COMMANDS: readonly string[] = Object.keys(COMMANDS)
