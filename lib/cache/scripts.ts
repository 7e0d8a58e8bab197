import type { Result } from 'ioredis'
import type { ScriptDefinition } from '../core/index.js'

// An entry of the cache toolkit is one string: a header line, then the codec's bytes.
//   'F' storedAtMs ' ' ttlMs ' ' graceMs ' ' basisUs [' ' generationKey]… '\n' payload
// basisUs is the Redis time (µs) before the value was computed; each generation key holds
// the Redis time (µs) of the last invalidation of a namespace or tag. The entry is valid while
// every generation is older than its basis. A bare decimal integer (a counter) has no header.
// Entries written by earlier versions start with 'E' and name generation keys of the old key
// layout, which invalidations no longer bump: they read as invalid.
// No entry lives past basis + maxTtl (writes and TTL changes are capped to that horizon), and a
// generation key lives at least maxTtl after its last bump: so no entry outlives the record
// that invalidated it.
// Lua numbers are doubles: µs times (< 2^53) are exact, but are printed with %.0f.
const checkEntry = `
-- returns 1 when a generation invalidated the entry (else 0), the entry's grace, and whether
-- the bytes look like ours (an entry header or a bare integer)
local function invalid (v)
  local b = string.byte(v, 1)
  if b == 69 then return 1, 0, true end
  if b ~= 70 then return 0, 0, b == 45 or (b ~= nil and b >= 48 and b <= 57) end
  local grace, basis, gens = string.match(v, '^F%d+ %d+ (%d+) (%d+)([^\\n]*)\\n')
  if not basis then return 0, 0, false end
  basis = tonumber(basis)
  for field in string.gmatch(gens, '%S+') do
    local g = tonumber(redis.call('GET', field) or '0') or 0
    if g >= basis then return 1, 0, true end
  end
  return 0, tonumber(grace), true
end
local function nowUs ()
  local t = redis.call('TIME')
  return t[1] .. string.sub('00000' .. t[2], -6), t
end
-- how many ms an entry with this basis (µs) may still live: until maxTtl after its basis
local function horizon (basis, now, maxTtl)
  return math.floor(maxTtl - (tonumber(now) - tonumber(basis)) / 1000)
end`

export const cacheScripts: ScriptDefinition[] = [
  {
    name: 'frsCacheGet',
    readOnly: true,
    // Standalone only: it reads the generation keys named inside each entry, which a Cluster
    // may hold on another node (see docs/cache.md, "Round trips").
    // KEYS the entries
    // reply: { nowUs, then per key: value or nil, PTTL, 1 when a generation invalidated it else 0 }
    // nowUs is '' when every key was a fresh hit with a TTL: TIME is skipped where it is not needed.
    // Inlined rather than built on the helpers below: this is the script of every hit, and
    // defining local functions on each call cost about a third of its server time.
    lua: `
local out = { '' }
local needTime = false
local n = 1
for _, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v then
    local p = redis.call('PTTL', key)
    local bad = 0
    local b = string.byte(v, 1)
    if b == 70 then
      local grace, basis, gens = string.match(v, '^F%d+ %d+ (%d+) (%d+)([^\\n]*)\\n')
      if basis then
        basis = tonumber(basis)
        for field in string.gmatch(gens, '%S+') do
          if (tonumber(redis.call('GET', field) or '0') or 0) >= basis then
            bad = 1
            break
          end
        end
        -- the time is the basis of a value computed next: a stale or invalidated read needs it
        if bad == 1 or p < 0 or p <= tonumber(grace) then needTime = true end
      else
        needTime = true
      end
    elseif b == 69 then
      bad = 1 -- an entry of the old layout (see the top of this file)
      needTime = true
    elseif b ~= 45 and (b < 48 or b > 57) or p < 0 then
      needTime = true -- foreign bytes (a miss follows) or a counter without TTL
    end
    out[n + 1] = v
    out[n + 2] = p
    out[n + 3] = bad
  else
    out[n + 1] = false
    out[n + 2] = -2
    out[n + 3] = 0
    needTime = true
  end
  n = n + 3
end
if needTime then
  local t = redis.call('TIME')
  out[1] = t[1] .. string.sub('00000' .. t[2], -6)
end
return out`
  },
  {
    name: 'frsCacheSet',
    // KEYS the entries (on a Cluster: one key a call)
    // ARGV[1] ttl ms, ARGV[2] grace ms (the key lives ttl + grace, within the horizon)
    // ARGV[3] basis µs, or '' for now; with a basis, an entry of a later basis is kept
    // ARGV[4] generation keys separated by spaces, or ''
    // ARGV[5] 'NX' to write only where no valid entry is, 'B<µs>' likewise on a Cluster (see below), else ''
    // ARGV[6] maxTtl ms: an entry lives at most this long after its basis (an older basis writes nothing)
    // ARGV[6 + i] the codec bytes for KEYS[i]; a bare integer is stored bare (a counter)
    // reply: how many keys were written
    lua: checkEntry + `
local now, t = nowUs()
local storedAt = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local basis = ARGV[3] ~= '' and ARGV[3] or now
local head = 'F' .. storedAt .. ' ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. basis
if ARGV[4] ~= '' then head = head .. ' ' .. ARGV[4] end
head = head .. '\\n'
local px = tonumber(ARGV[1]) + tonumber(ARGV[2])
local left = horizon(basis, now, tonumber(ARGV[6]))
if left < px then px = left end
local n = 0
for i, key in ipairs(KEYS) do
  local payload = ARGV[6 + i]
  local b = string.byte(payload, 1)
  local bare = b == 45 or (b >= 48 and b <= 57)
  local free = px > 0 or bare
  local old = free and (ARGV[5] ~= '' or ARGV[3] ~= '') and redis.call('GET', key)
  if old and ARGV[3] ~= '' and string.byte(old, 1) == 70 then
    -- a value computed from an older read never replaces one computed from a newer read
    local ob = tonumber(string.match(old, '^F%d+ %d+ %d+ (%d+)') or '')
    if ob and ob > tonumber(basis) then free = false end
  end
  if free and ARGV[5] ~= '' then
    if old and ARGV[5] == 'NX' then
      free = invalid(old) == 1
    elseif old and string.byte(old, 1) ~= 69 then
      -- 'B<µs>' (Cluster, where generations live on another node): the caller's read found no
      -- valid entry at that time; an entry whose basis is not later is the one it saw.
      local ob = tonumber(string.match(old, '^F%d+ %d+ %d+ (%d+)') or '')
      free = ob ~= nil and ob <= tonumber(string.sub(ARGV[5], 2))
    end
  end
  if free then
    if bare then
      -- a counter carries no generations, so no horizon: it lives ttl + grace
      redis.call('SET', key, payload, 'PX', tonumber(ARGV[1]) + tonumber(ARGV[2]))
    else
      redis.call('SET', key, head .. payload, 'PX', px)
    end
    n = n + 1
  end
end
return n`
  },
  {
    name: 'frsCacheBump',
    // KEYS generation keys of namespaces or tags (one hash tag, so one slot)
    // ARGV[1] how long a generation key lives, ms (at least the longest entry lifetime)
    // reply: the new generation, µs: the Redis time, or one more than the old one
    lua: checkEntry + `
local now = tonumber((nowUs()))
local keep = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  local v = now
  local old = tonumber(redis.call('GET', key) or '0') or 0
  if old >= v then v = old + 1 end
  local px = redis.call('PTTL', key)
  if px < keep then px = keep end
  redis.call('SET', key, string.format('%.0f', v), 'PX', px)
  now = v
end
return string.format('%.0f', now)`
  },
  {
    name: 'frsCacheGens',
    readOnly: true,
    // Cluster reads: the generations that frsCacheGet reads inline on a standalone server.
    // KEYS generation keys (one hash tag)
    // reply: { nowUs, each generation or nil }
    lua: checkEntry + `
local out = { (nowUs()) }
for _, key in ipairs(KEYS) do table.insert(out, redis.call('GET', key) or false) end
return out`
  },
  {
    name: 'frsCacheExpire',
    numberOfKeys: 1,
    // KEYS[1] an entry
    // ARGV[1] 'ttl' | 'expire' | 'touch' | 'persist'
    // ARGV[2] the fresh lifetime in ms (expire, touch), or '' for the entry's own ttl (touch)
    // ARGV[3] the lifetime for a bare counter when ARGV[2] is ''
    // ARGV[4] maxTtl ms: an entry's lifetime never reaches past its basis + maxTtl, so that
    //   it cannot outlive an invalidation record; persist on an entry extends it to there
    // reply: ttl: fresh ms left (-1 no TTL, -2 missing); otherwise 1 when applied, 0 when not
    lua: checkEntry + `
local v = redis.call('GET', KEYS[1])
local b = v and string.byte(v, 1)
-- an entry of the old layout reads as invalid: it is missing for these calls too
if not v or b == 69 then return ARGV[1] == 'ttl' and -2 or 0 end
local ttl, grace, basis = nil, 0, nil
if b == 70 then
  local _, x, y, z = string.match(v, '^F(%d+) (%d+) (%d+) (%d+)')
  ttl = tonumber(x)
  grace = tonumber(y) or 0
  basis = z
end
if ARGV[1] == 'ttl' then
  local p = redis.call('PTTL', KEYS[1])
  if p < 0 then return p end
  p = p - grace
  if p < 0 then return 0 end
  return p
end
if not basis then
  -- a bare counter: no generation reaches it, so its TTL is the caller's to choose
  if ARGV[1] == 'persist' then return redis.call('PERSIST', KEYS[1]) end
  return redis.call('PEXPIRE', KEYS[1], (tonumber(ARGV[2]) or tonumber(ARGV[3])) + grace)
end
local left = horizon(basis, (nowUs()), tonumber(ARGV[4]))
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
local px = left
if ARGV[1] ~= 'persist' then
  px = (tonumber(ARGV[2]) or ttl) + grace
  if px > left then px = left end
end
return redis.call('PEXPIRE', KEYS[1], px)`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    // Scripts with a variable number of keys take the key count first.
    frsCacheGetBuffer (numKeys: number, ...keys: string[]): Result<Array<Buffer | number | null>, Context>
    frsCacheSet (numKeys: number, ...args: Array<string | number | Buffer>): Result<number, Context>
    frsCacheBump (numKeys: number, ...args: Array<string | number>): Result<string, Context>
    frsCacheGens (numKeys: number, ...keys: string[]): Result<Array<string | null>, Context>
    frsCacheExpire (key: string, mode: string, ms: string | number, fallbackMs: number, maxTtlMs: number): Result<number, Context>
  }
}
