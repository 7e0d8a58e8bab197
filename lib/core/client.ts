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
  if (c.isCluster === true ? typeof c.nodes !== 'function' : typeof c.options !== 'object' || c.options === null) {
    return 'expected an ioredis Redis or Cluster instance (ioredis >= 5 or iovalkey)'
  }
  // ioredis 6 can map RESP3 replies to objects and numbers; the suite reads the default shapes.
  const options = (c.isCluster === true ? (c.options as { redisOptions?: unknown } | undefined)?.redisOptions : c.options) as { replyMapping?: unknown } | undefined
  if (options?.replyMapping === 'resp3') return "a client made with replyMapping: 'resp3' answers in shapes the suite does not read; adopt one with the default replyMapping ('legacy')"
  return undefined
}
