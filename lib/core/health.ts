import type { Cluster, Redis } from 'ioredis'
import { isCluster } from './client.js'

/** One Redis server as the health check saw it. */
export interface NodeHealth {
  /** host:port of the server. */
  address: string
  /** 'master' or 'slave', from INFO replication. */
  role: string
  /** The server's version. */
  version: string
  /** Bytes of memory in use (INFO memory used_memory). */
  usedMemory: number
  /** Keys in the connection's database (every database 0 on a Cluster). */
  keys: number
  /** Round trip of a PING in milliseconds. */
  latencyMs: number
}

/** One named connection: ok with its servers, or the error that stopped the check. */
export interface ConnectionHealth {
  ok: boolean
  mode: 'standalone' | 'cluster' | 'sentinel' | 'memory'
  /** Every server of the connection (each master of a Cluster). */
  nodes: NodeHealth[]
  /** Worst PING round trip among the nodes, in milliseconds. */
  latencyMs?: number
  error?: string
}

export interface HealthReport {
  ok: boolean
  connections: Record<string, ConnectionHealth>
  [section: string]: unknown
}

/** Checks one client: a PING and an INFO on each server, bounded by the client's command timeout. */
export async function checkHealth (client: Redis | Cluster): Promise<ConnectionHealth> {
  const mode = isCluster(client) ? 'cluster' : client.options.sentinels ? 'sentinel' : isMemory(client) ? 'memory' : 'standalone'
  try {
    const nodes = isCluster(client) ? client.nodes('master') : [client]
    if (nodes.length === 0) throw new Error('no master node is known')
    const db = isCluster(client) ? 0 : client.options.db ?? 0
    const report = await Promise.all(nodes.map((node) => checkNode(node, db)))
    return { ok: true, mode, nodes: report, latencyMs: Math.max(...report.map((n) => n.latencyMs)) }
  } catch (err) {
    return { ok: false, mode, nodes: [], error: (err as Error).message }
  }
}

async function checkNode (node: Redis, db: number): Promise<NodeHealth> {
  const start = process.hrtime.bigint()
  await node.ping()
  const latencyMs = Number(process.hrtime.bigint() - start) / 1e6
  const info = parseInfo(await node.info())
  const keyspace = info[`db${db}`] ?? ''
  const keys = /keys=(\d+)/.exec(keyspace)
  return {
    address: isMemory(node) ? node.options.host as string : `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`,
    role: info.role ?? 'unknown',
    version: info.redis_version ?? 'unknown',
    usedMemory: Number(info.used_memory ?? 0),
    keys: keys ? Number(keys[1]) : 0,
    latencyMs: Math.round(latencyMs * 1000) / 1000
  }
}

/** True for a client of the memory engine (`memory://`). */
function isMemory (client: Redis): boolean {
  return client.options.host?.startsWith('memory://') === true
}

/** Parses the text of INFO into field → value. */
export function parseInfo (text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0 && line[0] !== '#') out[line.slice(0, i)] = line.slice(i + 1).trim()
  }
  return out
}
