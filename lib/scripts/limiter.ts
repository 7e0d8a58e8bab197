import type { Result } from 'ioredis'
import type { ScriptDefinition } from './types.js'

// The rate limiter: every policy of one request is checked, and counted only when all of them
// allow it, in one atomic call. The state of one (scope, client) lives in one hash whose
// fields are per policy, so that one key (one Cluster slot, one TTL) holds it all.
//
// Fields, per policy `<alg>:<name>:` + `a`, `b`, `c`:
//   GCRA (g):           a = theoretical arrival time (ms, may be fractional)
//   fixed window (f):   a = window start (ms), b = count
//   sliding window (s): a = current window start, b = current count, c = previous count
// and `ban` (banned until, ms), `ss` / `sn` (start and count of the window of excesses).
// Times are stored as values, never left to Redis expiry, so that the test-only clock works.
export const limiterScripts: ScriptDefinition[] = [
  {
    name: 'frsRateLimit',
    numberOfKeys: 1,
    // KEYS[1] the hash of one (scope, client)
    // ARGV[1] 'c' to consume, 'p' to peek (read only, nothing written)
    // ARGV[2] TEST ONLY: a clock in ms to use instead of Redis TIME; '' in production
    // ARGV[3] ban after this many excesses (0: no bans)
    // ARGV[4] ban duration in ms, also the window in which excesses are counted
    // ARGV[5] number of policies n, then 6 values per policy:
    //         name, algorithm ('g' | 'f' | 's'), limit, window ms, burst (GCRA), cost
    // reply: { allowed 1|0, retry after ms, banned 1|0, then per policy: remaining, reset ms }
    lua: `
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local consume = ARGV[1] == 'c'
local banAfter = tonumber(ARGV[3])
local banMs = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local fields = { 'ban', 'ss', 'sn' }
for i = 1, n do
  local p = ARGV[6 + (i - 1) * 6 + 1] .. ':' .. ARGV[6 + (i - 1) * 6] .. ':'
  fields[#fields + 1] = p .. 'a'
  fields[#fields + 1] = p .. 'b'
  fields[#fields + 1] = p .. 'c'
end
local v = redis.call('HMGET', KEYS[1], unpack(fields))
local reply = { 1, 0, 0 }
local bannedUntil = tonumber(v[1]) or 0
if banAfter > 0 and bannedUntil > now then
  reply = { 0, math.ceil(bannedUntil - now), 1 }
  for i = 1, n do
    reply[#reply + 1] = 0
    reply[#reply + 1] = math.ceil(bannedUntil - now)
  end
  return reply
end
local allowed = true
local retry = 0
local writes = {}
local need = 0
local results = {}
for i = 1, n do
  local o = 5 + (i - 1) * 6
  local alg = ARGV[o + 2]
  local limit = tonumber(ARGV[o + 3])
  local w = tonumber(ARGV[o + 4])
  local cost = tonumber(ARGV[o + 6])
  local p = string.sub(fields[3 + (i - 1) * 3 + 1], 1, -2)
  local a = tonumber(v[3 + (i - 1) * 3 + 1])
  local b = tonumber(v[3 + (i - 1) * 3 + 2])
  local c = tonumber(v[3 + (i - 1) * 3 + 3])
  -- per policy: ok, remaining before / after, reset before / after, wait, TTL needed by the
  -- stored state, by the new state, and the new state's fields
  local r = {}
  if alg == 'g' then
    local T = w / limit
    local tau = tonumber(ARGV[o + 5]) * T
    local tat = a or now
    if tat < now then tat = now end
    local newTat = tat + cost * T
    -- 1e-3 ms of slack: stored times near 1.7e12 ms carry rounding of about 1e-4 ms
    r.ok = newTat - now <= tau + 1e-3
    r.before = math.floor((tau - (tat - now) + 1e-3) / T)
    r.after = math.floor((tau - (newTat - now) + 1e-3) / T)
    r.resetBefore, r.resetAfter = tat - now, newTat - now
    r.wait = newTat - tau - now
    r.keepOld, r.keepNew = tat - now, newTat - now
    r.state = { p .. 'a', string.format('%.17g', newTat) }
  else
    local start = now - (now % w)
    local elapsed = now - start
    local cur, prev = 0, 0
    if a == start then
      cur, prev = b or 0, c or 0
    elseif a == start - w and alg == 's' then
      prev = b or 0
    end
    local used = prev * (w - elapsed) / w + cur
    r.ok = used + cost <= limit + 1e-9
    r.before = math.floor(limit - used + 1e-9)
    r.after = math.floor(limit - used - cost + 1e-9)
    r.resetBefore, r.resetAfter = w - elapsed, w - elapsed
    if alg == 'f' then
      r.wait = w - elapsed
      r.keepOld, r.keepNew = 0, w - elapsed
      if a == start then r.keepOld = w - elapsed end
      r.state = { p .. 'a', start, p .. 'b', cur + cost }
    else
      if cur + cost <= limit and prev > 0 then
        -- the previous window's weight has to fade: prev * (w - e) / w <= limit - cur - cost
        r.wait = w - (limit - cur - cost) * w / prev - elapsed
      else
        -- only in the next window, where this window's count is the fading one
        local e = 0
        if cur > 0 then e = w - (limit - cost) * w / cur end
        if e < 0 then e = 0 end
        r.wait = w - elapsed + e
      end
      r.keepOld, r.keepNew = 0, 2 * w - elapsed
      if a ~= nil and a >= start - w then r.keepOld = 2 * w - elapsed end
      r.state = { p .. 'a', start, p .. 'b', cur + cost, p .. 'c', prev }
    end
  end
  if not r.ok then
    allowed = false
    if r.wait > retry then retry = r.wait end
  end
  results[i] = r
end
local counted = consume and allowed
for i = 1, n do
  local r = results[i]
  if counted then
    reply[#reply + 1] = math.max(r.after, 0)
    reply[#reply + 1] = math.ceil(r.resetAfter)
    for j = 1, #r.state do writes[#writes + 1] = r.state[j] end
    if r.keepNew > need then need = r.keepNew end
  else
    reply[#reply + 1] = math.max(r.before, 0)
    if r.ok then
      reply[#reply + 1] = math.ceil(r.resetBefore)
    else
      reply[#reply + 1] = math.ceil(r.wait)
    end
    if r.keepOld > need then need = r.keepOld end
  end
end
if not allowed then reply[1] = 0 end
if not consume then
  reply[2] = math.ceil(retry)
  return reply
end
if allowed then
  redis.call('HSET', KEYS[1], unpack(writes))
else
  if banAfter > 0 then
    local ss = tonumber(v[2]) or 0
    local sn = tonumber(v[3]) or 0
    if now - ss >= banMs then ss, sn = now, 0 end
    sn = sn + 1
    if sn >= banAfter then
      writes = { 'ban', now + banMs, 'ss', now, 'sn', 0 }
      if banMs > retry then retry = banMs end
      reply[3] = 1
    else
      writes = { 'ss', ss, 'sn', sn }
    end
    redis.call('HSET', KEYS[1], unpack(writes))
    if ss + banMs - now > need then need = ss + banMs - now end
  end
end
local strikesFrom = tonumber(v[2])
if banAfter > 0 and strikesFrom ~= nil and strikesFrom + banMs - now > need then need = strikesFrom + banMs - now end
if bannedUntil - now > need then need = bannedUntil - now end
if #writes > 0 then redis.call('PEXPIRE', KEYS[1], math.max(math.ceil(need), 1)) end
reply[2] = math.ceil(retry)
return reply`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsRateLimit (key: string, ...args: Array<string | number>): Result<number[], Context>
  }
}
