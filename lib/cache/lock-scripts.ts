import type { Result } from 'ioredis'
import type { ScriptDefinition } from '../core/index.js'

// Scripts behind the cache's locks and counters (lib/lock.ts, lib/counter.ts). Locks need
// nothing beyond core's frsCompareDel / frsComparePexpire.
export const lockScripts: ScriptDefinition[] = [
  {
    name: 'frsIncrKeepTtl',
    numberOfKeys: 1,
    // KEYS[1] the counter
    // ARGV[1] the increment (an integer, may be negative)
    // ARGV[2] the TTL in milliseconds for a counter that did not exist (or had expired)
    // reply: the new value
    // INCRBY alone would create a missing key without a TTL; an existing key keeps its own.
    lua: `
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value`
  },
  {
    name: 'frsClaim',
    numberOfKeys: 1,
    // KEYS[1] a pending total
    // reply: its value (nil when there was none), and the key is gone: GETDEL, which
    // Redis has only since 6.2 while the suite supports Redis 6.
    lua: `
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('DEL', KEYS[1])
end
return value`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsIncrKeepTtl (key: string, by: number, ttlMs: number): Result<number, Context>
    frsClaim (key: string): Result<string | null, Context>
  }
}
