import type { Result } from 'ioredis'
import type { ScriptDefinition } from '../core/index.js'

// One-time codes and link tokens (lib/otp.ts, lib/otp-tokens.ts). Every key of one subject
// shares a hash tag built from the subject's digest, so the scripts run on Redis Cluster.
// Replies are `[status, number]`; parsed in lib/otp.ts.
export const otpScripts: ScriptDefinition[] = [
  {
    name: 'frsOtpIssue',
    numberOfKeys: 4,
    // KEYS[1] the code hash (purpose + subject): h = HMAC of the code, a = attempts spent, m = max attempts
    // KEYS[2] the subject's consecutive-failure counter
    // KEYS[3] the resend cooldown marker (purpose + subject)
    // KEYS[4] the subject's daily send counter
    // ARGV[1] HMAC of the new code (never the code itself)
    // ARGV[2] code TTL in milliseconds
    // ARGV[3] max attempts for the new code
    // ARGV[4] resend cooldown in milliseconds (0: none)
    // ARGV[5] daily cap
    // ARGV[6] daily window in milliseconds
    // ARGV[7] lockAfter: failures that lock the subject
    // reply: {'ok', Redis time in ms} | {'locked' | 'cooldown' | 'daily-cap', retry after in ms}
    lua: `
local fails = tonumber(redis.call('GET', KEYS[2]) or '0')
if fails >= tonumber(ARGV[7]) then
  return {'locked', redis.call('PTTL', KEYS[2])}
end
local cooldown = redis.call('PTTL', KEYS[3])
if cooldown > 0 then
  return {'cooldown', cooldown}
end
if tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[5]) then
  return {'daily-cap', redis.call('PTTL', KEYS[4])}
end
if redis.call('INCR', KEYS[4]) == 1 then
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
-- A resend keeps the attempts already spent on the code it replaces: asking for a new
-- code must not buy more guesses.
local spent = tonumber(redis.call('HGET', KEYS[1], 'a') or '0')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'a', spent, 'm', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
end
local t = redis.call('TIME')
return {'ok', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}`
  },
  {
    name: 'frsOtpVerify',
    numberOfKeys: 2,
    // KEYS[1] the code hash (see frsOtpIssue)
    // KEYS[2] the subject's consecutive-failure counter
    // ARGV[1] HMAC of the submitted code
    // ARGV[2] lockAfter: failures that lock the subject
    // ARGV[3] lockFor in milliseconds: how long failures are remembered, and the lock lasts
    // reply: {'ok', 0} | {'invalid', attempts left} | {'expired', 0} (expired or missing) | {'locked', retry after in ms}
    lua: `
local lockAfter = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') >= lockAfter then
  return {'locked', redis.call('PTTL', KEYS[2])}
end
local rec = redis.call('HMGET', KEYS[1], 'h', 'a', 'm')
if not rec[1] then
  return {'expired', 0}
end
local max = tonumber(rec[3])
if tonumber(rec[2]) >= max then
  redis.call('DEL', KEYS[1])
  return {'expired', 0}
end
local spent = redis.call('HINCRBY', KEYS[1], 'a', 1)
-- Both sides are HMAC-SHA256 digests keyed by a secret Redis never sees. Lua's == may stop
-- at the first differing byte, but how many leading bytes of HMAC(guess) match HMAC(code)
-- says nothing about the code to someone without the secret, so the timing leaks nothing.
if rec[1] == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {'ok', 0}
end
local fails = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if fails >= lockAfter then
  redis.call('DEL', KEYS[1])
  return {'locked', tonumber(ARGV[3])}
end
if spent >= max then
  redis.call('DEL', KEYS[1])
end
return {'invalid', max - spent}`
  },
  {
    name: 'frsOtpGeneration',
    numberOfKeys: 1,
    // KEYS[1] the token generation of (purpose, subject)
    // ARGV[1] milliseconds the key must live at least (longer than the token being created)
    // reply: the current generation (0 when none)
    lua: `
local g = redis.call('GET', KEYS[1])
if not g then
  redis.call('SET', KEYS[1], '0', 'PX', ARGV[1])
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl >= 0 and ttl < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return tonumber(g)`
  },
  {
    name: 'frsOtpRevoke',
    numberOfKeys: 1,
    // KEYS[1] the token generation of (purpose, subject)
    // ARGV[1] TTL in milliseconds when the key is new (no token of this generation can exist then)
    // reply: the new generation
    lua: `
local g = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return g`
  }
]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    frsOtpIssue (code: string, fails: string, cooldown: string, day: string, hmac: string, ttlMs: number, maxAttempts: number,
      cooldownMs: number, dailyCap: number, dayMs: number, lockAfter: number): Result<[string, number], Context>
    frsOtpVerify (code: string, fails: string, hmac: string, lockAfter: number, lockForMs: number): Result<[string, number], Context>
    frsOtpGeneration (generation: string, minTtlMs: number): Result<number, Context>
    frsOtpRevoke (generation: string, ttlMs: number): Result<number, Context>
  }
}
