import type { Cluster, Redis } from 'ioredis'

/** The clients the suite speaks through: an ioredis (or iovalkey) `Redis` or `Cluster`. */
export type RedisClient = Redis | Cluster

/**
 * True for a Cluster client. Asked of the client's own `isCluster` flag rather than by
 * `instanceof`, so that a client made by another copy of ioredis (or by iovalkey) is known too.
 */
export function isCluster (client: RedisClient): client is Cluster {
  return (client as { isCluster?: unknown }).isCluster === true
}

/**
 * Why `value` cannot serve as a client, or undefined when it can. Checks by behaviour (the
 * methods and flags the suite relies on), not by `instanceof` of this package's ioredis.
 */
export function unusableClient (value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'expected an ioredis Redis or Cluster instance'
  const c = value as Record<string, unknown>
  if (typeof c.defineCommand !== 'function' || typeof c.status !== 'string' || typeof c.duplicate !== 'function') {
    return 'expected an ioredis Redis or Cluster instance (ioredis >= 5 or iovalkey); this object has no defineCommand/status/duplicate'
  }
  if (typeof c.isCluster !== 'boolean') return 'expected an ioredis Redis or Cluster instance (ioredis >= 5 or iovalkey); this client has no isCluster flag'
  if (c.isCluster === true ? typeof c.nodes !== 'function' : typeof c.options !== 'object') {
    return 'expected an ioredis Redis or Cluster instance (ioredis >= 5 or iovalkey)'
  }
  return undefined
}
