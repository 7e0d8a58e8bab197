import type { Result } from 'ioredis'
import type { ScriptDefinition } from './types.js'

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
