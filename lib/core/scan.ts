import type { Cluster, Redis } from 'ioredis'
import { InvalidOptionError } from './errors.js'
import { isCluster } from './client.js'

export interface ScanOptions {
  /** SCAN COUNT hint: keys examined per call; at least 100 so a wide keyspace takes few round trips. @default 1000 */
  count?: number
}

export interface DeleteByPatternOptions extends ScanOptions {
  /** Keys per UNLINK round trip. @default 500 */
  batch?: number
}

/** One page of SCAN: the keys and the node that holds them (the client itself when standalone). */
export interface ScanPage {
  node: Redis
  keys: string[]
}

const GLOB_CHARS = /[*?[\\]/

/**
 * Refuses a pattern that could reach beyond one prefix: its literal head, before any glob
 * character, must contain a `:` (a `Keyspace.pattern()` always does).
 */
function checkPattern (pattern: unknown): string {
  if (typeof pattern !== 'string') throw new InvalidOptionError('pattern', 'expected a string from Keyspace.pattern()')
  const glob = pattern.search(GLOB_CHARS)
  const head = glob === -1 ? pattern : pattern.slice(0, glob)
  if (head.indexOf(':') < 1) {
    throw new InvalidOptionError('pattern', `${JSON.stringify(pattern)} has no literal "prefix:" before its first glob character; build it with Keyspace.pattern()`)
  }
  return pattern
}

function checkCount (value: number | undefined, name: string, fallback: number, min: number): number {
  const n = value ?? fallback
  if (!Number.isSafeInteger(n) || n < min) throw new InvalidOptionError(name, `expected an integer >= ${min}, got ${String(value)}`)
  return n
}

/** The nodes that own keys: every master of a Cluster, or the client itself. */
export function masterNodes (client: Redis | Cluster): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client]
}

/**
 * Iterates the keys matching `pattern` with SCAN MATCH on every master, one page at a time.
 * A key may appear twice (SCAN's guarantee); never KEYS.
 */
export async function * scanPattern (client: Redis | Cluster, pattern: string, opts: ScanOptions = {}): AsyncGenerator<ScanPage> {
  checkPattern(pattern)
  const count = checkCount(opts.count, 'count', 1000, 100)
  for (const node of masterNodes(client)) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count)
      cursor = next
      if (keys.length > 0) yield { node, keys }
    } while (cursor !== '0')
  }
}

/**
 * Deletes every key matching `pattern` (from `Keyspace.pattern()`): SCAN on every master,
 * UNLINK in batches on the node that owns the keys. Resolves the number of keys removed.
 * Never KEYS, FLUSHDB or FLUSHALL.
 */
export async function deleteByPattern (client: Redis | Cluster, pattern: string, opts: DeleteByPatternOptions = {}): Promise<number> {
  const batch = checkCount(opts.batch, 'batch', 500, 1)
  const cluster = isCluster(client)
  let deleted = 0
  let pending: string[] = []
  let pendingNode: Redis | undefined

  const drain = async (): Promise<void> => {
    if (pendingNode === undefined || pending.length === 0) return
    const keys = pending
    pending = []
    if (!cluster) {
      deleted += await pendingNode.unlink(...keys)
      return
    }
    // A multi-key UNLINK on a Cluster needs one slot; single-key UNLINKs pipelined to the
    // node that returned the keys cost one round trip all the same.
    const pipeline = pendingNode.pipeline()
    for (const key of keys) pipeline.unlink(key)
    for (const [err, n] of (await pipeline.exec()) ?? []) {
      if (err) throw err
      deleted += n as number
    }
  }

  for await (const { node, keys } of scanPattern(client, pattern, opts)) {
    if (node !== pendingNode) {
      await drain()
      pendingNode = node
    }
    for (const key of keys) {
      pending.push(key)
      if (pending.length >= batch) await drain()
    }
  }
  await drain()
  return deleted
}
