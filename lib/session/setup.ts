// Builds the session store of one app from resolved options on a shared connection, with its
// local cache when asked for: what every door (the Fastify plugin, the Express adapter) does
// the same way.
import type { Cluster, Redis } from 'ioredis'
import { LocalTier } from '../core/index.js'
import type { Keyspace } from '../core/index.js'
import type { ResolvedSessionOptions } from './config.js'
import { RedisSessionStore } from './store.js'

export interface CreateSessionStoreOptions {
  client: Redis | Cluster
  keyspace: Keyspace
  options: ResolvedSessionOptions
  log: { info: (msg: string) => void, warn: (obj: object, msg: string) => void }
}

/** The store and, with `localCache`, this instance's cache (started; the caller closes it). */
export function createSessionStore ({ client, keyspace, options, log }: CreateSessionStoreOptions): { store: RedisSessionStore, cache: LocalTier<string> | undefined } {
  const channel = keyspace.key('changed')
  let cache: LocalTier<string> | undefined
  if (options.localCache !== undefined) {
    cache = new LocalTier<string>(client, channel, options.localCache, (live, err) => {
      if (live) log.info('session localCache: subscribed to invalidations, serving reads from memory')
      else log.warn({ err }, 'session localCache: invalidation subscription lost; every read goes to Redis until it is back')
    })
    cache.start()
  }
  const store = new RedisSessionStore({
    client,
    keyspace,
    channel,
    cache,
    idleTimeout: options.idleTimeout,
    absoluteTimeout: options.absoluteTimeout,
    rolling: options.rolling,
    tombstoneTtl: options.tombstoneTtl,
    userIdField: options.userIdField,
    maxSessionsPerUser: options.maxSessionsPerUser
  })
  return { store, cache }
}

/** What `health()` reports of sessions. */
export function sessionHealth (store: RedisSessionStore, cache: LocalTier<string> | undefined): object {
  return cache === undefined
    ? { ...store.stats }
    : { ...store.stats, localCache: { live: cache.live, size: cache.size, ...cache.stats } }
}
