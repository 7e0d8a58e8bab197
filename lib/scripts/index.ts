import type { Cluster, Redis } from 'ioredis'
import { cacheScripts } from './cache.js'
import { coreScripts } from './core.js'
import { lockScripts } from './lock.js'
import { otpScripts } from './otp.js'
import type { ScriptDefinition } from './types.js'

export type { ScriptDefinition } from './types.js'

// Every Lua script of the suite. Each feature keeps its scripts in its own file and lists
// them here, so that the core plugin registers all of them once on every client it manages.
export const scripts: readonly ScriptDefinition[] = Object.freeze([
  ...coreScripts,
  // cache
  ...lockScripts,
  ...cacheScripts,
  // rate limit
  // session
  // otp
  ...otpScripts,
])

const registered = new WeakSet<Redis | Cluster>()

/**
 * Defines every script on `client` once (EVALSHA with a NOSCRIPT fallback comes from ioredis).
 * Safe to call again: a client that has them is left alone.
 */
export function registerScripts (client: Redis | Cluster): void {
  if (registered.has(client)) return
  for (const script of scripts) {
    client.defineCommand(script.name, {
      lua: script.lua,
      numberOfKeys: script.numberOfKeys,
      readOnly: script.readOnly ?? false
    })
  }
  registered.add(client)
}
