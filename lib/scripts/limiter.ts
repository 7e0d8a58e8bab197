import type { Result } from 'ioredis'
import type { ScriptDefinition } from './types.js'

// The rate limiter: every policy of one request is checked, and counted only when all of them
// allow it, in one atomic call. The state of one (scope, client) lives in one hash with fields
// per policy, so that one key (one Cluster slot, one TTL) holds it all. Field names come from
// the caller (`<alg>:<policy name>`), so the script builds no strings on the common path.
//
//   GCRA (g):           <field> = theoretical arrival time (ms, may be fractional)
//   fixed window (f):   <field>:s = window start (ms), <field>:c = count
//   sliding window (s): the same, and <field>:p = the previous window's count
//   bans:               ban = banned until (ms), ss / sn = start and count of refusals
// Times are stored as values, never left to Redis expiry, so that the test-only clock works.
// A fractional TAT survives the trip: Redis turns Lua numbers into strings with "%.17g".
// `now` in ms: Redis TIME, or the test-only clock when ARGV[arg] is not ''.
const nowFrom = (arg: number): string => `local now
if ARGV[${arg}] ~= '' then
  now = tonumber(ARGV[${arg}])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end`

export const limiterScripts: ScriptDefinition[] = [
  {
    name: 'frsRateLimit',
    numberOfKeys: 1,
    // KEYS[1] the hash of one (scope, client)
    // ARGV[1] 'c' to consume, 'p' to peek (read only, nothing written)
    // ARGV[2] TEST ONLY: a clock in ms to use instead of Redis TIME; '' in production
    // ARGV[3] the request's cost (units it uses of every policy)
    // ARGV[4] ban after this many refusals (0: no bans)
    // ARGV[5] ban duration in ms, also the window in which refusals are counted
    // ARGV[6] number of policies n, then 5 values per policy:
    //         algorithm ('g' | 'f' | 's'), limit, window ms, burst (GCRA), field name
    // reply: { allowed 1|0, retry after ms, banned 1|0, then per policy: remaining, reset ms }
    lua: `
${nowFrom(2)}
local consume = ARGV[1] == 'c'
local cost = tonumber(ARGV[3])
local banAfter = tonumber(ARGV[4])
local banMs = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local fields = {}
for i = 1, n do
  local o = 6 + (i - 1) * 5
  local f = ARGV[o + 5]
  if ARGV[o + 1] == 'g' then
    fields[#fields + 1] = f
  else
    fields[#fields + 1] = f .. ':s'
    fields[#fields + 1] = f .. ':c'
    fields[#fields + 1] = f .. ':p'
  end
end
local nf = #fields
if banAfter > 0 then
  fields[nf + 1] = 'ban'
  fields[nf + 2] = 'ss'
  fields[nf + 3] = 'sn'
end
local v = redis.call('HMGET', KEYS[1], unpack(fields))
local reply = { 1, 0, 0 }
local bannedUntil = 0
if banAfter > 0 then
  bannedUntil = tonumber(v[nf + 1]) or 0
  if bannedUntil > now then
    reply = { 0, math.ceil(bannedUntil - now), 1 }
    for i = 1, n do
      reply[3 + 2 * i - 1] = 0
      reply[3 + 2 * i] = math.ceil(bannedUntil - now)
    end
    return reply
  end
end
-- Per policy, 10 slots in res: ok, remaining before / after, reset before / after, wait,
-- TTL needed by the stored state / by the new state, new start (or TAT), new count.
local res = {}
local allowed, retry, vi = true, 0, 1
for i = 1, n do
  local o = 6 + (i - 1) * 5
  local alg = ARGV[o + 1]
  local limit = tonumber(ARGV[o + 2])
  local w = tonumber(ARGV[o + 3])
  local b = (i - 1) * 10
  if alg == 'g' then
    local T = w / limit
    local tau = tonumber(ARGV[o + 4]) * T
    local tat = tonumber(v[vi]) or now
    vi = vi + 1
    if tat < now then tat = now end
    local newTat = tat + cost * T
    -- 1e-3 ms of slack: stored times near 1.7e12 ms carry rounding of about 1e-4 ms
    res[b + 1] = newTat - now <= tau + 1e-3
    res[b + 2] = math.floor((tau - (tat - now) + 1e-3) / T)
    res[b + 3] = math.floor((tau - (newTat - now) + 1e-3) / T)
    res[b + 4], res[b + 5] = tat - now, newTat - now
    res[b + 6] = newTat - tau - now
    res[b + 7], res[b + 8] = tat - now, newTat - now
    res[b + 9] = newTat
  else
    local a, c, p = tonumber(v[vi]), tonumber(v[vi + 1]) or 0, tonumber(v[vi + 2]) or 0
    vi = vi + 3
    local start = now - (now % w)
    local elapsed = now - start
    local cur, prev = 0, 0
    if a == start then
      cur, prev = c, p
    elseif a == start - w and alg == 's' then
      prev = c
    end
    local used = prev * (w - elapsed) / w + cur
    res[b + 1] = used + cost <= limit + 1e-9
    res[b + 2] = math.floor(limit - used + 1e-9)
    res[b + 3] = math.floor(limit - used - cost + 1e-9)
    res[b + 4], res[b + 5] = w - elapsed, w - elapsed
    res[b + 9], res[b + 10] = start, cur + cost
    if alg == 'f' then
      res[b + 6] = w - elapsed
      res[b + 7], res[b + 8] = 0, w - elapsed
      if a == start then res[b + 7] = w - elapsed end
    else
      if cur + cost <= limit and prev > 0 then
        -- the previous window's weight has to fade: prev * (w - e) / w <= limit - cur - cost
        res[b + 6] = w - (limit - cur - cost) * w / prev - elapsed
      else
        -- only in the next window, where this window's count is the fading one
        local e = 0
        if cur > 0 then e = w - (limit - cost) * w / cur end
        if e < 0 then e = 0 end
        res[b + 6] = w - elapsed + e
      end
      res[b + 7], res[b + 8] = 0, 2 * w - elapsed
      if a ~= nil and a >= start - w then res[b + 7] = 2 * w - elapsed end
      res[b + 11] = prev
    end
  end
  if not res[b + 1] then
    allowed = false
    if res[b + 6] > retry then retry = res[b + 6] end
  end
end
local counted = consume and allowed
local writes = {}
local need = 0
for i = 1, n do
  local o = 6 + (i - 1) * 5
  local b = (i - 1) * 10
  if counted then
    reply[2 + 2 * i] = math.max(res[b + 3], 0)
    reply[3 + 2 * i] = math.ceil(res[b + 5])
    local f = ARGV[o + 5]
    if ARGV[o + 1] == 'g' then
      writes[#writes + 1] = f
      writes[#writes + 1] = res[b + 9]
    else
      writes[#writes + 1] = f .. ':s'
      writes[#writes + 1] = res[b + 9]
      writes[#writes + 1] = f .. ':c'
      writes[#writes + 1] = res[b + 10]
      if ARGV[o + 1] == 's' then
        writes[#writes + 1] = f .. ':p'
        writes[#writes + 1] = res[b + 11]
      end
    end
    if res[b + 8] > need then need = res[b + 8] end
  else
    reply[2 + 2 * i] = math.max(res[b + 2], 0)
    if res[b + 1] then
      reply[3 + 2 * i] = math.ceil(res[b + 4])
    else
      reply[3 + 2 * i] = math.ceil(res[b + 6])
    end
    if res[b + 7] > need then need = res[b + 7] end
  end
end
if not allowed then reply[1] = 0 end
if not consume then
  reply[2] = math.ceil(retry)
  return reply
end
local strikesFrom
if banAfter > 0 then strikesFrom = tonumber(v[nf + 2]) end
if not allowed and banAfter > 0 then
  local ss = strikesFrom or 0
  local sn = tonumber(v[nf + 3]) or 0
  if now - ss >= banMs then ss, sn = now, 0 end
  sn = sn + 1
  if sn >= banAfter then
    ss, sn, bannedUntil = now, 0, now + banMs
    writes = { 'ban', bannedUntil }
    if banMs > retry then retry = banMs end
    reply[3] = 1
  end
  writes[#writes + 1] = 'ss'
  writes[#writes + 1] = ss
  writes[#writes + 1] = 'sn'
  writes[#writes + 1] = sn
  strikesFrom = ss
end
if #writes > 0 then
  if strikesFrom ~= nil and strikesFrom + banMs - now > need then need = strikesFrom + banMs - now end
  if bannedUntil - now > need then need = bannedUntil - now end
  redis.call('HSET', KEYS[1], unpack(writes))
  redis.call('PEXPIRE', KEYS[1], math.max(math.ceil(need), 1))
end
reply[2] = math.ceil(retry)
return reply`
  },
  {
    name: 'frsRateLimitGcra',
    numberOfKeys: 1,
    // The common case on its own: one GCRA policy, counted, no bans. The same hash field as
    // frsRateLimit's, so that both scripts (peek uses the other) read the same state.
    // KEYS[1] the hash of one (scope, client)
    // ARGV[1] TEST ONLY: a clock in ms to use instead of Redis TIME; '' in production
    // ARGV[2] the request's cost
    // ARGV[3] limit, ARGV[4] window ms, ARGV[5] burst, ARGV[6] field name
    // reply: two integers, kept short since every reply element costs the client a decode:
    //        allowed: { remaining, reset ms }; refused: { -1 - remaining, retry after ms }
    lua: `
${nowFrom(1)}
local T = tonumber(ARGV[4]) / tonumber(ARGV[3])
local tau = tonumber(ARGV[5]) * T
local tat = tonumber(redis.call('HGET', KEYS[1], ARGV[6])) or now
if tat < now then tat = now end
local newTat = tat + tonumber(ARGV[2]) * T
if newTat - now <= tau + 1e-3 then
  redis.call('HSET', KEYS[1], ARGV[6], newTat)
  redis.call('PEXPIRE', KEYS[1], math.max(math.ceil(newTat - now), 1))
  return { math.floor((tau - (newTat - now) + 1e-3) / T), math.ceil(newTat - now) }
end
return { -1 - math.max(math.floor((tau - (tat - now) + 1e-3) / T), 0), math.ceil(newTat - tau - now) }`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsRateLimit (key: string, ...args: Array<string | number>): Result<number[], Context>
    frsRateLimitGcra (key: string, ...args: Array<string | number>): Result<number[], Context>
  }
}
