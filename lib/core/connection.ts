import { Cluster, Redis } from 'ioredis'
import type { ClusterNode, ClusterOptions, RedisOptions, SentinelAddress } from 'ioredis'
import { InvalidOptionError, RedisUnreachableError } from './errors.js'
import { coreScripts, defineScripts } from './scripts.js'
import { isCluster, unusableClient } from './client.js'

/** Where one connection goes. Give exactly one of `url`, `options`, `cluster`, `sentinel` or `client` (`url` may come with `options`). */
export interface ConnectionConfig {
  /** A `redis://` or `rediss://` URL (`redis://user:pass@host:6379/2`). */
  url?: string
  /** ioredis options (host, port, db, password, tls, …); merged over `url` and over the suite's safe defaults. */
  options?: RedisOptions
  /** Cluster startup nodes (`[{ host, port }]` or `'redis://host:port'` strings). */
  cluster?: ClusterNode[]
  /** Options for the Cluster client; `redisOptions` in it applies to every node. */
  clusterOptions?: ClusterOptions
  /** Sentinel settings: the sentinels to ask and the master group name. */
  sentinel?: { sentinels: Array<Partial<SentinelAddress>>, name: string, options?: RedisOptions }
  /** An existing ioredis client to adopt. The suite never closes an adopted client. */
  client?: Redis | Cluster
}

export interface SafeDefaults {
  /** Milliseconds a command may wait for its reply. */
  commandTimeout: number
  /** Milliseconds to wait for the connection to become ready. */
  connectTimeout: number
}

/** A connection the suite manages. */
export interface ManagedConnection {
  name: string
  client: Redis | Cluster
  /** Where it points, for messages (never a password). */
  address: string
  /** False for an adopted client: the suite must not close it. */
  owned: boolean
}

/**
 * The suite's request-path defaults: commands fail after `commandTimeout` instead of waiting,
 * nothing queues while the connection is down, and reconnects back off up to 2 s, forever.
 */
export function safeRedisOptions (defaults: SafeDefaults): RedisOptions {
  return {
    commandTimeout: defaults.commandTimeout,
    connectTimeout: defaults.connectTimeout,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000) + Math.floor(Math.random() * 100),
    lazyConnect: true
  }
}

/** Validates one connection's config and names it in any error (`connections.sessions.url`). */
export function checkConnectionConfig (config: unknown, name: string): ConnectionConfig {
  if (typeof config === 'string') config = { url: config }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new InvalidOptionError(name, 'expected a URL string or an object with url, options, cluster, sentinel or client')
  }
  const c = config as ConnectionConfig
  const given = (['url', 'cluster', 'sentinel', 'client'] as const).filter((k) => c[k] !== undefined)
  if (given.length > 1) throw new InvalidOptionError(name, `give only one of url, cluster, sentinel or client, not ${given.join(' and ')}`)
  if (c.url !== undefined) {
    if (typeof c.url !== 'string' || !/^rediss?:\/\//.test(c.url)) throw new InvalidOptionError(`${name}.url`, `expected a redis:// or rediss:// URL, got ${JSON.stringify(redact(String(c.url)))}`)
    try { new URL(c.url) } catch { throw new InvalidOptionError(`${name}.url`, 'it is not a valid URL') } // eslint-disable-line no-new
  }
  if (c.cluster !== undefined && (!Array.isArray(c.cluster) || c.cluster.length === 0)) throw new InvalidOptionError(`${name}.cluster`, 'expected a non-empty array of startup nodes')
  if (c.sentinel !== undefined) {
    const s = c.sentinel
    if (s === null || typeof s !== 'object' || !Array.isArray(s.sentinels) || s.sentinels.length === 0) throw new InvalidOptionError(`${name}.sentinel.sentinels`, 'expected a non-empty array of { host, port }')
    if (typeof s.name !== 'string' || s.name === '') throw new InvalidOptionError(`${name}.sentinel.name`, 'expected the master group name')
  }
  if (c.client !== undefined) {
    const why = unusableClient(c.client)
    if (why !== undefined) throw new InvalidOptionError(`${name}.client`, why)
  }
  if (c.options !== undefined && (c.options === null || typeof c.options !== 'object')) throw new InvalidOptionError(`${name}.options`, 'expected an object of ioredis options')
  if (c.clusterOptions !== undefined && c.cluster === undefined) throw new InvalidOptionError(`${name}.clusterOptions`, 'only applies together with "cluster"')
  return c
}

/** Creates (or adopts) the client for one connection, without connecting it yet. */
export function createConnection (name: string, config: ConnectionConfig, defaults: SafeDefaults): ManagedConnection {
  if (config.client !== undefined) {
    return { name, client: config.client, address: describeClient(config.client), owned: false }
  }
  const safe = safeRedisOptions(defaults)
  if (config.cluster !== undefined) {
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      lazyConnect: true,
      clusterRetryStrategy: safe.retryStrategy,
      ...config.clusterOptions,
      redisOptions: { ...safe, ...config.clusterOptions?.redisOptions }
    }
    return { name, client: new Cluster(config.cluster, clusterOptions), address: 'cluster ' + config.cluster.map(describeNode).join(','), owned: true }
  }
  if (config.sentinel !== undefined) {
    const { sentinels, name: group, options } = config.sentinel
    const client = new Redis({ ...safe, ...config.options, ...options, sentinels, name: group })
    return { name, client, address: `sentinel master "${group}" via ${sentinels.map(describeNode).join(',')}`, owned: true }
  }
  const client = config.url !== undefined
    ? new Redis(config.url, { ...safe, ...config.options })
    : new Redis({ ...safe, ...config.options })
  return { name, client, address: describeClient(client), owned: true }
}

/**
 * Connects and waits until the client is ready. When it is not ready within `timeoutMs`,
 * rejects with FRS_REDIS_UNREACHABLE naming the address (the last socket error is its cause).
 */
export async function waitReady (conn: ManagedConnection, timeoutMs: number): Promise<void> {
  const { client } = conn
  defineScripts(client, coreScripts)
  if (client.status === 'ready') return
  let lastError: unknown
  const onError = (err: unknown) => { lastError = err }
  let onReady: () => void = () => {}
  let timer: NodeJS.Timeout | undefined
  client.on('error', onError)
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve
      client.once('ready', onReady)
      timer = setTimeout(() => {
        reject(new RedisUnreachableError(conn.name, conn.address, timeoutMs, { cause: lastError }))
      }, timeoutMs)
      if (client.status === 'wait') client.connect().catch(onError)
    })
  } finally {
    clearTimeout(timer)
    client.off('error', onError)
    client.off('ready', onReady)
  }
}

/** Closes an owned client: QUIT, and a hard disconnect when QUIT has not finished within `timeoutMs`. */
export async function closeConnection (conn: ManagedConnection, timeoutMs: number): Promise<void> {
  if (!conn.owned) return
  const { client } = conn
  if (client.status === 'end') return
  const timers: NodeJS.Timeout[] = []
  const ended = new Promise<void>((resolve) => {
    client.once('end', () => resolve())
    // A bounded wait: an unanswered QUIT turns into a disconnect, and a client that never
    // connected may not emit 'end' at all.
    timers.push(setTimeout(() => client.disconnect(), timeoutMs))
    timers.push(setTimeout(resolve, timeoutMs + 250))
  })
  if (client.status === 'ready') client.quit().catch(() => client.disconnect())
  else client.disconnect()
  await ended
  for (const timer of timers) clearTimeout(timer)
}

function describeClient (client: Redis | Cluster): string {
  if (isCluster(client)) return 'cluster ' + client.nodes().map((n) => describeNode({ host: n.options.host, port: n.options.port })).join(',')
  const o = client.options
  if (o.sentinels) return `sentinel master "${o.name ?? ''}"`
  if (o.path) return o.path
  return `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`
}

function describeNode (node: ClusterNode | Partial<SentinelAddress>): string {
  if (typeof node === 'number') return `127.0.0.1:${node}`
  if (typeof node === 'string') return redact(node)
  return `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}`
}

/** A URL with its password replaced, safe for messages and logs. */
export function redact (url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_, auth: string) => '//' + (auth.includes(':') ? auth.slice(0, auth.indexOf(':')) + ':***' : '***') + '@')
}
