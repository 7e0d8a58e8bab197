import type { Result } from 'ioredis'
import type { ScriptDefinition } from '../core/index.js'

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
    // A batch: the checks that one app instance collected while its previous call was in
    // flight, run in arrival order, each as if it had come on its own. Every check consumes
    // only when all of its policies allow it.
    // KEYS    the hashes of the batch's (scope, client) pairs, each once (numkeys comes first)
    // ARGV[1] TEST ONLY: a clock in ms to use instead of Redis TIME; '' in production
    // ARGV[2] ban after this many refusals (0: no bans)
    // ARGV[3] ban duration in ms, also the window in which refusals are counted
    // ARGV[4] number of policy lists L; then per list its length n and 5 values per policy:
    //         algorithm ('g' | 'f' | 's'), limit, window ms, burst (GCRA), field name
    // then    the checks in one string, each `<key index><c|p|r><cost>/<list index>[@<ms>] `:
    //         the key's index in KEYS, 'c' to consume, 'p' to peek (read only) or 'r' to refund
    //         a counted check (given back its cost; `@<ms>` is that check's time), or 'o' to
    //         consume where the list is one GCRA policy, there are no bans and no other check
    //         of the batch has this key; then the cost
    //         (units it uses of every policy), the policy list's index (from 1)
    // reply:  one string of integers separated by spaces (cheaper for the client to decode
    //         than an array): the time (ms), then per check in order (refunds have none):
    //         allowed 1|0, retry after ms, banned 1|0, then per policy of its list: remaining,
    //         reset ms
    lua: `
${nowFrom(1)}
local banAfter = tonumber(ARGV[2])
local banMs = tonumber(ARGV[3])
-- Each key's fields are read once (HMGET) and written once (HSET, PEXPIRE) per batch; the
-- checks in between work on the copy in st[key].
local st, order = {}, {}
local function load (key, fields)
  local s = st[key]
  if s == nil then
    s = { v = {}, dirty = {}, df = {}, need = 0 }
    st[key] = s
  end
  local missing = {}
  for i = 1, #fields do
    if s.v[fields[i]] == nil then missing[#missing + 1] = fields[i] end
  end
  if #missing > 0 then
    local got = redis.call('HMGET', key, unpack(missing))
    for i = 1, #missing do s.v[missing[i]] = got[i] end
  end
  return s
end
local function set (s, f, value)
  s.v[f] = value
  if not s.dirty[f] then
    s.dirty[f] = true
    s.df[#s.df + 1] = f
  end
end
local function queue (key, s)
  if not s.queued then
    s.queued = true
    order[#order + 1] = key
  end
end
-- GCRA: the stored TAT (or now), and the TAT after a request of cost.
local function tats (q, stored, cost)
  local tat = tonumber(stored) or now
  if tat < now then tat = now end
  return tat, tat + cost * q.T
end
-- The common case (one GCRA policy, no bans, counted) with no tables: its reply is the
-- general path's for the same check.
local function fast (key, cost, q, out)
  local s = st[key]
  if s == nil then
    s = { v = {}, dirty = {}, df = {}, need = 0 }
    st[key] = s
  end
  local raw = s.v[q.f]
  if raw == nil then
    raw = redis.call('HGET', key, q.f)
    s.v[q.f] = raw
  end
  local T, tau = q.T, q.tau
  local tat, newTat = tats(q, raw, cost)
  local n = #out
  if newTat - now <= tau + 1e-3 then
    set(s, q.f, newTat)
    s.need = math.max(math.ceil(newTat - now), 1)
    queue(key, s)
    out[n + 1], out[n + 2], out[n + 3] = '1', '0', '0'
    out[n + 4] = tostring(math.floor((tau - (newTat - now) + 1e-3) / T))
    out[n + 5] = tostring(math.ceil(newTat - now))
  else
    local wait = tostring(math.ceil(newTat - tau - now))
    out[n + 1], out[n + 2], out[n + 3] = '0', wait, '0'
    out[n + 4] = tostring(math.max(math.floor((tau - (tat - now) + 1e-3) / T), 0))
    out[n + 5] = wait
  end
end
-- The commonest case of all (the fast path's, for a key that no other check of the batch
-- touches): straight to Redis, no copy to keep. The same reply as the fast path's.
local function once (key, cost, q)
  local T, tau = q.T, q.tau
  local tat, newTat = tats(q, redis.call('HGET', key, q.f), cost)
  if newTat - now <= tau + 1e-3 then
    local reset = math.ceil(newTat - now)
    redis.call('HSET', key, q.f, newTat)
    redis.call('PEXPIRE', key, math.max(reset, 1))
    return string.format('1 0 0 %d %d', math.floor((tau - (newTat - now) + 1e-3) / T), reset)
  end
  local wait = math.ceil(newTat - tau - now)
  return string.format('0 %d 0 %d %d', wait, math.max(math.floor((tau - (tat - now) + 1e-3) / T), 0), wait)
end
-- A refund: what a counted check at t0 used of each policy, given back while it is stored.
-- The state only shrinks, so the key's TTL (set when it was counted) still covers it.
local function refund (key, cost, pol, t0)
  local s = load(key, pol.fields)
  local v = s.v
  for i = 1, #pol do
    local q = pol[i]
    if q[1] == 'g' then
      local tat = tonumber(v[q.f])
      if tat ~= nil and tat > now then
        tat = tat - cost * q.T
        if tat < now then tat = now end
        set(s, q.f, tat)
        queue(key, s)
      end
    else
      local w = q[3]
      local start = t0 - (t0 % w)
      local a = tonumber(v[q.fs])
      local f = nil
      if a == start then f = q.fc elseif a == start + w and q[1] == 's' then f = q.fp end
      if f ~= nil and (tonumber(v[f]) or 0) > 0 then
        set(s, f, math.max((tonumber(v[f]) or 0) - cost, 0))
        queue(key, s)
      end
    end
  end
end
local function check (key, consume, cost, pol)
  local n = #pol
  local s = load(key, pol.fields)
  local v = s.v
  local reply = { 1, 0, 0 }
  local bannedUntil = 0
  if banAfter > 0 then
    bannedUntil = tonumber(v.ban) or 0
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
  local allowed, retry = true, 0
  for i = 1, n do
    local q = pol[i]
    local alg, limit, w = q[1], q[2], q[3]
    local b = (i - 1) * 10
    if alg == 'g' then
      local T, tau = q.T, q.tau
      local tat, newTat = tats(q, v[q.f], cost)
      -- 1e-3 ms of slack: stored times near 1.7e12 ms carry rounding of about 1e-4 ms
      res[b + 1] = newTat - now <= tau + 1e-3
      res[b + 2] = math.floor((tau - (tat - now) + 1e-3) / T)
      res[b + 3] = math.floor((tau - (newTat - now) + 1e-3) / T)
      res[b + 4], res[b + 5] = tat - now, newTat - now
      res[b + 6] = newTat - tau - now
      res[b + 7], res[b + 8] = tat - now, newTat - now
      res[b + 9] = newTat
    else
      local a, c, p = tonumber(v[q.fs]), tonumber(v[q.fc]) or 0, tonumber(v[q.fp]) or 0
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
  local wrote = false
  local need = 0
  for i = 1, n do
    local q = pol[i]
    local b = (i - 1) * 10
    if counted then
      reply[2 + 2 * i] = math.max(res[b + 3], 0)
      reply[3 + 2 * i] = math.ceil(res[b + 5])
      if q[1] == 'g' then
        set(s, q.f, res[b + 9])
      else
        set(s, q.fs, res[b + 9])
        set(s, q.fc, res[b + 10])
        if q[1] == 's' then set(s, q.fp, res[b + 11]) end
      end
      wrote = true
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
  if banAfter > 0 then strikesFrom = tonumber(v.ss) end
  if not allowed and banAfter > 0 then
    local ss = strikesFrom or 0
    local sn = tonumber(v.sn) or 0
    if now - ss >= banMs then ss, sn = now, 0 end
    sn = sn + 1
    if sn >= banAfter then
      ss, sn, bannedUntil = now, 0, now + banMs
      set(s, 'ban', bannedUntil)
      if banMs > retry then retry = banMs end
      reply[3] = 1
    end
    set(s, 'ss', ss)
    set(s, 'sn', sn)
    wrote = true
    strikesFrom = ss
  end
  if wrote then
    if strikesFrom ~= nil and strikesFrom + banMs - now > need then need = strikesFrom + banMs - now end
    if bannedUntil - now > need then need = bannedUntil - now end
    -- as when each check writes on its own: the TTL the last write needs
    s.need = math.max(math.ceil(need), 1)
    queue(key, s)
  end
  reply[2] = math.ceil(retry)
  return reply
end
-- The policy lists, with the hash fields each one reads.
local lists, a = {}, 5
for l = 1, tonumber(ARGV[4]) do
  local list, fields = {}, {}
  for i = 1, tonumber(ARGV[a]) do
    local f = ARGV[a + 5]
    local q = { ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]) }
    if q[1] == 'g' then
      q.f, q.T = f, q[3] / q[2]
      q.tau = q[4] * q.T
      fields[#fields + 1] = f
    else
      q.fs, q.fc, q.fp = f .. ':s', f .. ':c', f .. ':p'
      fields[#fields + 1] = q.fs
      fields[#fields + 1] = q.fc
      fields[#fields + 1] = q.fp
    end
    list[i] = q
    a = a + 5
  end
  if banAfter > 0 then
    fields[#fields + 1] = 'ban'
    fields[#fields + 1] = 'ss'
    fields[#fields + 1] = 'sn'
  end
  list.fields = fields
  list.fast = #list == 1 and list[1][1] == 'g' and banAfter == 0
  lists[l] = list
  a = a + 1
end
local out = { string.format('%d', now) }
for k, mode, cost, l, t0 in string.gmatch(ARGV[a], '(%d+)(%a)(%d+)/(%d+)@?(%d*)') do
  local list = lists[tonumber(l)]
  if mode == 'o' then
    out[#out + 1] = once(KEYS[tonumber(k)], tonumber(cost), list[1])
  elseif mode == 'r' then
    refund(KEYS[tonumber(k)], tonumber(cost), list, tonumber(t0))
  elseif list.fast and mode == 'c' then
    fast(KEYS[tonumber(k)], tonumber(cost), list[1], out)
  else
    local r = check(KEYS[tonumber(k)], mode == 'c', tonumber(cost), list)
    for j = 1, #r do out[#out + 1] = string.format('%d', r[j]) end
  end
end
for _, key in ipairs(order) do
  local s = st[key]
  if #s.df == 1 then
    redis.call('HSET', key, s.df[1], s.v[s.df[1]])
  else
    local hs = {}
    for _, f in ipairs(s.df) do
      hs[#hs + 1] = f
      hs[#hs + 1] = s.v[f]
    end
    redis.call('HSET', key, unpack(hs))
  end
  -- need is 0 when only refunds wrote: the TTL set by the counting still covers the state
  if s.need > 0 then redis.call('PEXPIRE', key, s.need) end
end
return table.concat(out, ' ')`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsRateLimit (numberOfKeys: number, ...args: Array<string | number>): Result<string, Context>
  }
}
