// Builds the guard of one app from resolved options on a shared connection: what every door
// (the Fastify plugin, the Express adapter) does the same way before it handles a request.
import { isCluster } from '../core/index.js'
import type { Keyspace } from '../core/index.js'
import type { Cluster, Redis } from 'ioredis'
import type { LimitedRequest, ResolvedRateLimitOptions } from './config.js'
import { RateLimitGuard } from './guard.js'
import type { GuardLogger } from './guard.js'
import { Limiter } from './limiter.js'

export interface CreateGuardOptions<Req extends LimitedRequest, Reply> {
  client: Redis | Cluster
  /** The pool's command timeout, ms. */
  commandTimeout: number
  keyspace: Keyspace
  options: ResolvedRateLimitOptions<Req, Reply>
  log: GuardLogger
}

/** The limiter and guard of one app, each check bounded in time. */
export function createRateLimitGuard<Req extends LimitedRequest, Reply> (o: CreateGuardOptions<Req, Reply>): RateLimitGuard<Req, Reply> {
  // ioredis bounds a standalone client's commands by its commandTimeout; a Cluster's not while
  // a node's connection is being set up, and an adopted client may have no timeout at all.
  const bounded = isCluster(o.client) || typeof o.client.options.commandTimeout !== 'number'
  const limiter = new Limiter({ client: o.client, ban: o.options.ban, timeoutMs: bounded ? o.commandTimeout : undefined })
  return new RateLimitGuard<Req, Reply>({ limiter, keyspace: o.keyspace, options: o.options, log: o.log })
}
