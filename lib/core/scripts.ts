import type { Cluster, Redis, Result } from 'ioredis'

/** One Lua script, registered on every client through ioredis `defineCommand`. */
export interface ScriptDefinition {
  /** The command name on the client; `frs` first, so it never meets a user's own command. */
  name: string
  /** How many of the arguments are keys (they come first); omitted for a variable number, which the caller then passes first. */
  numberOfKeys?: number
  /** The script; it opens with comments naming its KEYS, ARGV and reply. */
  lua: string
  /** True when the script only reads (lets ioredis send it to replicas). @default false */
  readOnly?: boolean
}

const defined = new WeakMap<object, Set<string>>()

/**
 * Defines each script on `client` once (EVALSHA with a NOSCRIPT fallback comes from ioredis).
 * Every feature calls it with its own scripts when it is built on a client, so that the core
 * knows no feature's scripts. Safe to call again: a script the client has is left alone.
 */
export function defineScripts (client: Redis | Cluster, scripts: readonly ScriptDefinition[]): void {
  let names = defined.get(client)
  if (names === undefined) defined.set(client, names = new Set())
  for (const script of scripts) {
    if (names.has(script.name)) continue
    client.defineCommand(script.name, {
      lua: script.lua,
      numberOfKeys: script.numberOfKeys,
      readOnly: script.readOnly ?? false
    })
    names.add(script.name)
  }
}

// Generic scripts on a token-owned key (locks, leases): only the holder of the token may
// release or extend, so a holder whose key expired cannot touch a later holder's key.
export const coreScripts: ScriptDefinition[] = [
  {
    name: 'frsCompareDel',
    numberOfKeys: 1,
    // KEYS[1] the owned key
    // ARGV[1] the owner's token
    // reply: 1 when the key held the token and was deleted, else 0
    lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`
  },
  {
    name: 'frsComparePexpire',
    numberOfKeys: 1,
    // KEYS[1] the owned key
    // ARGV[1] the owner's token
    // ARGV[2] the new TTL in milliseconds
    // reply: 1 when the key held the token and its TTL was set, else 0
    lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`
  },
  {
    name: 'frsTime',
    numberOfKeys: 0,
    // reply: the Redis server's clock in milliseconds, the time that every app instance agrees on
    lua: `
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsCompareDel (key: string, token: string): Result<number, Context>
    frsComparePexpire (key: string, token: string, ttlMs: number): Result<number, Context>
    frsTime (): Result<number, Context>
  }
}
