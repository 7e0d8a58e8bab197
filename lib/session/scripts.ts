import type { Result } from 'ioredis'
import type { ScriptDefinition } from '../core/index.js'

// Session records are strings `1:<createdMs>:<maxAgeMs>:<userLength>:<user><json>`: the
// header lets a script enforce the absolute lifetime and know the owner without decoding
// JSON. A destroyed session is the tombstone `x` for a short while, so that neither a write
// still in flight nor a racing create can bring it back.
//
// Every script that changes or ends a live session publishes `<origin> <key>` on the
// invalidation channel (ARGV named below; '' publishes nothing), so that instances holding the
// session in a local cache drop it; the origin names the writing instance's cache ('-' none),
// which knows its own writes already.
const PARSE = `
local function parse(v)
  if not v then return nil end
  local created, maxAge, ulen, pos = string.match(v, '^1:(%d+):(%d+):(%d+):()')
  if not created then return nil end
  ulen = tonumber(ulen)
  return tonumber(created), tonumber(maxAge), string.sub(v, pos, pos + ulen - 1), pos + ulen
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ttlOf(created, maxAge, absolute, t)
  return math.min(maxAge, created + absolute - t)
end`

export const sessionScripts: ScriptDefinition[] = [
  {
    name: 'frsSessionGet',
    // Reads a batch of sessions (the keys of one slot) at one instant.
    // KEYS the session keys, each once
    // ARGV[1] absolute lifetime in ms
    // ARGV[2] '1' to renew the idle TTL (rolling), '0' not to
    // ARGV[3] tombstone TTL in ms
    // ARGV[4] invalidation channel, or ''
    // ARGV[5] origin, for the invalidation
    // reply: per key, two entries: the record and the ms it has left, or false and 0 when
    // absent, destroyed or past its absolute lifetime
    lua: PARSE + `
local absolute, renew, tombstone, channel, origin = tonumber(ARGV[1]), ARGV[2] == '1', ARGV[3], ARGV[4], ARGV[5]
local t
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  local created, maxAge = parse(v)
  local ttl = 0
  if created then
    t = t or now()
    ttl = ttlOf(created, maxAge, absolute, t)
    if ttl <= 0 then
      redis.call('SET', key, 'x', 'PX', tombstone)
      if channel ~= '' then redis.call('PUBLISH', channel, origin .. ' ' .. key) end
      v, ttl = false, 0
    elseif renew then
      redis.call('PEXPIRE', key, ttl)
    else
      ttl = redis.call('PTTL', key)
    end
  else
    v = false
  end
  out[2 * i - 1] = v
  out[2 * i] = ttl
end
return out`
  },
  {
    name: 'frsSessionCreate',
    numberOfKeys: 1,
    // KEYS[1] the session key of a new id
    // ARGV[1] idle TTL (cookie max age) in ms
    // ARGV[2] absolute lifetime in ms
    // ARGV[3] the owner's user id, or ''
    // ARGV[4] the session data as JSON
    // reply: the creation time in ms, or nil when the key exists (id taken or tombstone)
    lua: PARSE + `
local t = now()
local maxAge = tonumber(ARGV[1])
local v = '1:' .. t .. ':' .. maxAge .. ':' .. #ARGV[3] .. ':' .. ARGV[3] .. ARGV[4]
if redis.call('SET', KEYS[1], v, 'NX', 'PX', ttlOf(t, maxAge, tonumber(ARGV[2]), t)) then return t end
return nil`
  },
  {
    name: 'frsSessionUpdate',
    // Writes a batch of loaded sessions (keys of one slot), in order, each as if alone.
    // KEYS the session keys of the writes (a key may repeat: its writes run in order)
    // ARGV[1] absolute lifetime in ms
    // ARGV[2] invalidation channel, or ''
    // ARGV[3] origin, for the invalidation
    // then per write, 4 entries: idle TTL (cookie max age) in ms, the owner's user id or '',
    // the session data as JSON, the creation time the session was loaded with
    // reply: per write, 3 entries: 1, previous user, ms it has left when written; 0, '', 0 when
    // the session is gone (destroyed, expired, or replaced), so that a write never recreates it
    lua: PARSE + `
local absolute, channel, origin = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local t = now()
local out = {}
for i, key in ipairs(KEYS) do
  local a = 4 * i
  local maxAge, user, json = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local created, _, previous = parse(redis.call('GET', key))
  local ttl = 0
  if created and created == tonumber(ARGV[a + 3]) then ttl = ttlOf(created, maxAge, absolute, t) end
  if ttl > 0 then
    redis.call('SET', key, '1:' .. created .. ':' .. maxAge .. ':' .. #user .. ':' .. user .. json, 'PX', ttl)
    if channel ~= '' then redis.call('PUBLISH', channel, origin .. ' ' .. key) end
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = 1, previous, ttl
  else
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = 0, '', 0
  end
end
return out`
  },
  {
    name: 'frsSessionDestroy',
    numberOfKeys: 1,
    // KEYS[1] the session key
    // ARGV[1] tombstone TTL in ms
    // ARGV[2] only destroy when the owner is this user id; '' for any session
    // ARGV[3] invalidation channel, or ''
    // ARGV[4] origin, for the invalidation
    // reply: {1, owner or '', 1 when a session was there else 0} when a tombstone was written
    // (also over an absent key, so that a create racing a revoke fails); {0} when it is a live
    // session of another user
    lua: PARSE + `
local created, _, user = parse(redis.call('GET', KEYS[1]))
if ARGV[2] ~= '' and created and user ~= ARGV[2] then return {0} end
redis.call('SET', KEYS[1], 'x', 'PX', ARGV[1])
if created and ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. KEYS[1]) end
return {1, user or '', created and 1 or 0}`
  },
  {
    name: 'frsSessionIndexAdd',
    numberOfKeys: 1,
    // KEYS[1] the user's index: a sorted set of session ids scored by their absolute deadline
    // ARGV[1] the session id
    // ARGV[2] its absolute deadline in ms, or 0 for now + ARGV[3] (a session about to be created)
    // ARGV[3] absolute lifetime in ms
    // ARGV[4] the most sessions one user may have
    // reply: ids that the cap pushed out (oldest first); the caller ends those sessions
    lua: `
local clock = redis.call('TIME')
local t = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
-- Fractional ms (microsecond clock), so that sessions created in one millisecond keep their order.
local score = tonumber(ARGV[2])
if score == 0 then score = t + tonumber(ARGV[3]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
redis.call('ZADD', KEYS[1], score, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
local evicted = {}
if over > 0 then
  evicted = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(last[2]) - t))) end
return evicted`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsSessionGet (numberOfKeys: number, ...keysThenArgs: Array<string | number>): Result<Array<string | number | null>, Context>
    frsSessionCreate (key: string, maxAgeMs: number, absoluteMs: number, user: string, json: string): Result<number | null, Context>
    frsSessionUpdate (numberOfKeys: number, ...keysThenArgs: Array<string | number>): Result<Array<string | number>, Context>
    frsSessionDestroy (key: string, tombstoneMs: number, onlyUser: string, channel: string, origin: string): Result<[0] | [1, string, number], Context>
    frsSessionIndexAdd (key: string, sessionId: string, deadlineMs: number, absoluteMs: number, cap: number): Result<string[], Context>
  }
}
