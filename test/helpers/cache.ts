// Helpers for the cache tests: an app with the cache plugin, and a logger that records warnings.
import type { FastifyInstance } from 'fastify'
import cachePlugin from '../../plugins/cache.js'
import type { CachePluginOptions } from '../../plugins/cache.js'
import type { RedisPluginOptions } from '../../plugins/redis.js'
import { buildApp } from '../fixtures/app.js'
import type { TeardownHost } from '../fixtures/app.js'
import { assertKeysHaveTtl } from '../fixtures/redis.js'
import type { Cluster, Redis } from 'ioredis'

export interface Warnings { list: Array<{ obj: object, msg: string }> }

/** An app with the core and cache plugins; warnings the cache logs are collected in `warnings`. */
export async function cacheApp (
  t: TeardownHost,
  cacheOpts: CachePluginOptions = {},
  coreOpts: Partial<RedisPluginOptions> = {}
): Promise<{ app: FastifyInstance, warnings: Warnings }> {
  const warnings: Warnings = { list: [] }
  const app = await buildApp(t, coreOpts, async (app) => {
    const origWarn = app.log.warn.bind(app.log)
    app.log.warn = ((obj: object, msg: string) => { warnings.list.push({ obj, msg }); origWarn(obj, msg) }) as typeof app.log.warn
    await app.register(cachePlugin, cacheOpts)
  })
  return { app, warnings }
}

/** Polls `check` until it is true or `ms` pass; resolves whether it became true. */
export async function eventually (check: () => boolean | Promise<boolean>, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return check()
}

/** assertKeysHaveTtl for a tap Test (whose assertion signatures the fixture's structural type does not accept). */
export function noKeyWithoutTtl (
  t: { ok: (v: unknown, m: string) => unknown, same: (a: unknown, b: unknown, m: string) => unknown },
  client: Redis | Cluster,
  prefix: string,
  except?: (key: string) => boolean
): Promise<number> {
  return assertKeysHaveTtl({ ok: (v, m) => t.ok(v, m ?? ''), same: (a, b, m) => t.same(a, b, m ?? '') }, client, prefix, except)
}
