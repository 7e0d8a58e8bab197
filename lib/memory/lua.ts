// The memory engine's script runner: the suite's own Lua scripts, unchanged, in a real Lua VM
// (Lua 5.4 compiled to WebAssembly by wasmoon). Only wasmoon's raw C API is used, so strings
// cross the boundary as bytes (binary-safe, like Redis) and integers as 64-bit integers.
// Lua 5.4 is not Redis's Lua 5.1; the prelude adds what the scripts use from 5.1 (`unpack`).
import { LuaFactory } from 'wasmoon'
import { ReplyFailure, Status } from './reply.js'
import type { Reply } from './reply.js'

/** The few entries of Lua's C API the runner calls (wasmoon's emscripten module). */
interface LuaModule {
  HEAPU8: Uint8Array
  _malloc: (size: number) => number
  _free: (ptr: number) => void
  addFunction: (fn: (L: number) => number, signature: string) => number
  getValue: (ptr: number, type: string) => number
  _luaL_newstate: () => number
  _luaL_openlibs: (L: number) => void
  _luaL_loadbufferx: (L: number, buf: number, size: number, name: number, mode: number) => number
  _lua_pcallk: (L: number, nargs: number, nresults: number, msgh: number, ctx: number, k: number) => number
  _lua_gettop: (L: number) => number
  _lua_settop: (L: number, idx: number) => void
  _lua_type: (L: number, idx: number) => number
  _lua_isinteger: (L: number, idx: number) => number
  _lua_tonumberx: (L: number, idx: number, isnum: number) => number
  _lua_tointegerx: (L: number, idx: number, isnum: number) => bigint
  _lua_toboolean: (L: number, idx: number) => number
  _lua_tolstring: (L: number, idx: number, len: number) => number
  _lua_pushnil: (L: number) => void
  _lua_pushinteger: (L: number, n: bigint) => void
  _lua_pushboolean: (L: number, b: number) => void
  _lua_pushlstring: (L: number, s: number, len: number) => number
  _lua_pushcclosure: (L: number, fn: number, n: number) => void
  _lua_createtable: (L: number, narr: number, nrec: number) => void
  _lua_rawseti: (L: number, idx: number, n: bigint) => void
  _lua_rawgeti: (L: number, idx: number, n: bigint) => number
  _lua_getfield: (L: number, idx: number, k: number) => number
  _lua_setfield: (L: number, idx: number, k: number) => void
  _lua_getglobal: (L: number, name: number) => number
  _lua_setglobal: (L: number, name: number) => void
}

const T_NIL = 0
const T_BOOLEAN = 1
const T_NUMBER = 3
const T_STRING = 4
const T_TABLE = 5

// What Redis gives every script, on Lua 5.4: `redis.call` raises a command's error and
// `redis.pcall` returns it as { err = ... }; both go through one host function that never raises.
const PRELUDE = `
unpack = table.unpack
local host = __frs_host
__frs_host = nil
io, os, package, require, dofile, loadfile, debug = nil, nil, nil, nil, nil, nil, nil
redis = { LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3 }
function redis.pcall (...) return host(...) end
function redis.call (...)
  local r = host(...)
  if type(r) == 'table' and r.err then error(r, 2) end
  return r
end
function redis.error_reply (m) return { err = m } end
function redis.status_reply (m) return { ok = m } end
function redis.log () end
function redis.setresp () end
function __frs_run (f, keys, argv)
  KEYS, ARGV = keys, argv
  return f()
end`

/** Runs a command for a script's `redis.call`; never throws (a failure is a {@link ReplyFailure}). */
export type HostCall = (args: Buffer[]) => Reply

/** One Lua state; scripts are compiled once and kept by name. */
export class LuaVm {
  readonly #m: LuaModule
  readonly #L: number
  readonly #lenPtr: number
  readonly #names = new Map<string, number>()
  #host: HostCall | undefined

  private constructor (m: LuaModule) {
    this.#m = m
    this.#L = m._luaL_newstate()
    this.#lenPtr = m._malloc(8)
    m._luaL_openlibs(this.#L)
    const host = m.addFunction((L) => this.#onCall(L), 'ii')
    m._lua_pushcclosure(this.#L, host, 0)
    m._lua_setglobal(this.#L, this.#cname('__frs_host'))
    const failure = this.#load('prelude', PRELUDE) ?? this.#call(0)
    if (failure !== undefined) throw new Error(`the memory engine's Lua prelude failed: ${failure.message}`)
  }

  /** Loads the WebAssembly Lua and opens a state (about 50 ms the first time in a process). */
  static async open (): Promise<LuaVm> {
    const wasm = await new LuaFactory().getLuaModule()
    return new LuaVm(wasm.module as unknown as LuaModule)
  }

  /** Compiles `lua` as the function named `name`; a syntax error is a {@link ReplyFailure}. */
  define (name: string, lua: string): ReplyFailure | undefined {
    if (this.#names.has(name)) return undefined
    const failure = this.#load(`@user_script:${name}`, lua)
    if (failure !== undefined) return new ReplyFailure(`ERR Error compiling script (new function): ${failure.message}`)
    this.#m._lua_setglobal(this.#L, this.#cname('f_' + name))
    this.#names.set(name, 1)
    return undefined
  }

  /** Runs the script `name` (defined before) with KEYS and ARGV; commands go to `host`. */
  run (name: string, keys: Buffer[], argv: Buffer[], host: HostCall): Reply {
    const m = this.#m
    const L = this.#L
    const top = m._lua_gettop(L)
    this.#host = host
    try {
      m._lua_getglobal(L, this.#cname('__frs_run'))
      m._lua_getglobal(L, this.#cname('f_' + name))
      this.#pushArray(keys)
      this.#pushArray(argv)
      const failure = this.#call(3)
      if (failure !== undefined) {
        return failure.message.startsWith('ERR') || /^[A-Z]+ /.test(failure.message)
          ? failure
          : new ReplyFailure(`ERR user_script: ${failure.message} script: ${name}`)
      }
      return this.#read(m._lua_gettop(L))
    } finally {
      m._lua_settop(L, top)
      this.#host = undefined
    }
  }

  /** Calls the function below `nargs` arguments on the stack; its error, or undefined. */
  #call (nargs: number): ReplyFailure | undefined {
    const status = this.#m._lua_pcallk(this.#L, nargs, 1, 0, 0, 0)
    if (status === 0) return undefined
    const err = this.#read(this.#m._lua_gettop(this.#L))
    if (err instanceof ReplyFailure) return err
    return new ReplyFailure(Buffer.isBuffer(err) ? err.toString() : String(err))
  }

  #load (chunkName: string, source: string): ReplyFailure | undefined {
    const m = this.#m
    const code = Buffer.from(source)
    const ptr = this.#bytes(code)
    const name = this.#cname(chunkName)
    try {
      if (m._luaL_loadbufferx(this.#L, ptr, code.length, name, 0) === 0) return undefined
      const message = this.#read(m._lua_gettop(this.#L))
      m._lua_settop(this.#L, -2)
      return new ReplyFailure(Buffer.isBuffer(message) ? message.toString() : 'syntax error')
    } finally {
      m._free(ptr)
    }
  }

  /** The host side of `redis.call`: arguments as bytes, the reply pushed as Redis would convert it. */
  #onCall (L: number): number {
    const m = this.#m
    const n = m._lua_gettop(L)
    const args: Buffer[] = []
    for (let i = 1; i <= n; i++) {
      const type = m._lua_type(L, i)
      if (type === T_STRING) {
        args.push(this.#string(L, i))
      } else if (type === T_NUMBER) {
        args.push(Buffer.from(formatNumber(m._lua_isinteger(L, i) !== 0 ? m._lua_tointegerx(L, i, 0) : m._lua_tonumberx(L, i, 0))))
      } else {
        this.#push(L, new ReplyFailure('ERR Lua redis lib command arguments must be strings or integers'))
        return 1
      }
    }
    const host = this.#host
    this.#push(L, host === undefined ? new ReplyFailure('ERR redis.call outside a script') : host(args))
    return 1
  }

  #push (L: number, reply: Reply): void {
    const m = this.#m
    if (reply === null) {
      m._lua_pushboolean(L, 0)
    } else if (typeof reply === 'number') {
      m._lua_pushinteger(L, BigInt(Math.trunc(reply)))
    } else if (Buffer.isBuffer(reply)) {
      this.#pushString(L, reply)
    } else if (Array.isArray(reply)) {
      m._lua_createtable(L, reply.length, 0)
      for (let i = 0; i < reply.length; i++) {
        this.#push(L, reply[i] as Reply)
        m._lua_rawseti(L, -2, BigInt(i + 1))
      }
    } else {
      m._lua_createtable(L, 0, 1)
      this.#pushString(L, Buffer.from(reply instanceof ReplyFailure ? reply.message : reply.status))
      m._lua_setfield(L, -2, this.#cname(reply instanceof ReplyFailure ? 'err' : 'ok'))
    }
  }

  #pushArray (items: Buffer[]): void {
    const m = this.#m
    m._lua_createtable(this.#L, items.length, 0)
    for (let i = 0; i < items.length; i++) {
      this.#pushString(this.#L, items[i] as Buffer)
      m._lua_rawseti(this.#L, -2, BigInt(i + 1))
    }
  }

  /** The value at `idx` as Redis converts a script's reply (numbers truncate, false is nil, tables stop at the first nil). */
  #read (idx: number): Reply {
    const m = this.#m
    const L = this.#L
    switch (m._lua_type(L, idx)) {
      case T_NUMBER: return Number(m._lua_isinteger(L, idx) !== 0 ? m._lua_tointegerx(L, idx, 0) : Math.trunc(m._lua_tonumberx(L, idx, 0)))
      case T_STRING: return this.#string(L, idx)
      case T_BOOLEAN: return m._lua_toboolean(L, idx) !== 0 ? 1 : null
      case T_TABLE: {
        for (const field of ['err', 'ok'] as const) {
          const type = m._lua_getfield(L, idx, this.#cname(field))
          if (type === T_STRING) {
            const text = this.#string(L, m._lua_gettop(L)).toString()
            m._lua_settop(L, -2)
            return field === 'err' ? new ReplyFailure(text) : new Status(text)
          }
          m._lua_settop(L, -2)
        }
        const out: Reply[] = []
        for (let i = 1; ; i++) {
          const type = m._lua_rawgeti(L, idx, BigInt(i))
          if (type === T_NIL) { m._lua_settop(L, -2); break }
          out.push(this.#read(m._lua_gettop(L)))
          m._lua_settop(L, -2)
        }
        return out
      }
      default: return null
    }
  }

  #string (L: number, idx: number): Buffer {
    const m = this.#m
    const ptr = m._lua_tolstring(L, idx, this.#lenPtr)
    const len = m.getValue(this.#lenPtr, 'i32') >>> 0
    return Buffer.from(m.HEAPU8.subarray(ptr, ptr + len))
  }

  #pushString (L: number, bytes: Buffer): void {
    const ptr = this.#bytes(bytes)
    this.#m._lua_pushlstring(L, ptr, bytes.length)
    this.#m._free(ptr)
  }

  #bytes (bytes: Buffer): number {
    const ptr = this.#m._malloc(Math.max(bytes.length, 1))
    this.#m.HEAPU8.set(bytes, ptr)
    return ptr
  }

  readonly #cnames = new Map<string, number>()
  /** A NUL-terminated copy of `name` in the VM's memory, kept for the VM's life. */
  #cname (name: string): number {
    let ptr = this.#cnames.get(name)
    if (ptr === undefined) {
      const bytes = Buffer.from(name + '\0')
      ptr = this.#bytes(bytes)
      this.#cnames.set(name, ptr)
    }
    return ptr
  }
}

/** A Lua number as Redis passes it to a command: integers as integers, others as `%.17g`. */
function formatNumber (n: number | bigint): string {
  if (typeof n === 'bigint' || Number.isInteger(n)) return String(n)
  return Number(n.toPrecision(17)).toString()
}
