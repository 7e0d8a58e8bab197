import { connect } from 'node:net'
import { Cluster, Redis } from 'ioredis'
import type { ClusterNode, ClusterOptions, RedisOptions, SentinelAddress } from 'ioredis'
import { InvalidOptionError, RedisUnreachableError, RedisVersionError } from './errors.js'
import { coreScripts, defineScripts } from './scripts.js'
import { isCluster, unusableClient } from './client.js'
import { checkKeys, optionKeys } from './options.js'
import { MemoryRedis } from '../memory/index.js'

/** Where one connection goes. Give exactly one of `url`, `options`, `cluster`, `sentinel` or `client` (`url` may come with `options`). */
export interface ConnectionConfig {
  /**
   * A `redis://` or `rediss://` URL (`redis://user:pass@host:6379/2`), or `memory://` (or
   * `memory://name`) for the in-process memory engine: no Redis server, one process only (see
   * the README). `undefined` (an unset `process.env` variable) counts as not given. @default undefined
   */
  url?: string | undefined
  /**
   * The memory engine refuses to start when `NODE_ENV` is `production`: its data lives in one
   * process and is lost on restart. `true` says you mean it. @default false
   */
  allowMemoryInProduction?: boolean
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
  /** A Cluster's startup nodes, probed at startup to tell a refused connection from a slow one (ioredis's Cluster errors carry no socket code). */
  startupNodes?: Array<{ host: string, port: number }>
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

/** The keys of a connection's settings. */
export const CONNECTION_KEYS = optionKeys<ConnectionConfig>({ url: true, allowMemoryInProduction: true, options: true, cluster: true, clusterOptions: true, sentinel: true, client: true })
const SENTINEL_KEYS = optionKeys<NonNullable<ConnectionConfig['sentinel']>>({ sentinels: true, name: true, options: true })

/**
 * Validates one connection's config and names it in any error (`redis.connections.sessions.url`).
 * `undefined` (an unset environment variable) is refused: a connection needs somewhere to go.
 */
export function checkConnectionConfig (config: unknown, name: string): ConnectionConfig {
  if (config === undefined) throw new InvalidOptionError(name, 'it is undefined (an unset environment variable?); give a redis:// URL or connection settings')
  if (typeof config === 'string') config = { url: config }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new InvalidOptionError(name, 'expected a URL string or an object with url, options, cluster, sentinel or client')
  }
  checkKeys(config, CONNECTION_KEYS, name)
  const c = config as ConnectionConfig
  const given = (['url', 'cluster', 'sentinel', 'client'] as const).filter((k) => c[k] !== undefined)
  if (given.length > 1) throw new InvalidOptionError(name, `give only one of url, cluster, sentinel or client, not ${given.join(' and ')}`)
  if (given.length === 0 && c.options === undefined) throw new InvalidOptionError(name, 'give one of url, options, cluster, sentinel or client (url is undefined: an unset environment variable?)')
  if (c.url !== undefined) {
    if (typeof c.url !== 'string' || !/^(rediss?|memory):\/\//.test(c.url)) throw new InvalidOptionError(`${name}.url`, `expected a redis://, rediss:// or memory:// URL, got ${JSON.stringify(redact(String(c.url)))}`)
    try { new URL(c.url) } catch { throw new InvalidOptionError(`${name}.url`, 'it is not a valid URL') } // eslint-disable-line no-new
  }
  if (c.allowMemoryInProduction !== undefined && typeof c.allowMemoryInProduction !== 'boolean') throw new InvalidOptionError(`${name}.allowMemoryInProduction`, 'expected true or false')
  if (c.url !== undefined && memoryName(c.url) !== undefined) {
    if (c.options !== undefined) throw new InvalidOptionError(`${name}.options`, 'the memory engine takes no ioredis options')
    if (process.env.NODE_ENV === 'production' && c.allowMemoryInProduction !== true) {
      throw new InvalidOptionError(`${name}.url`, 'memory:// keeps data in this one process (not shared between instances, lost on restart) and NODE_ENV is "production"; use Redis, or set allowMemoryInProduction: true if you mean it')
    }
  } else if (c.allowMemoryInProduction !== undefined) {
    throw new InvalidOptionError(`${name}.allowMemoryInProduction`, 'only applies together with a memory:// url')
  }
  if (c.cluster !== undefined && (!Array.isArray(c.cluster) || c.cluster.length === 0)) throw new InvalidOptionError(`${name}.cluster`, 'expected a non-empty array of startup nodes')
  if (c.sentinel !== undefined) {
    const s = c.sentinel
    if (s === null || typeof s !== 'object' || !Array.isArray(s.sentinels) || s.sentinels.length === 0) throw new InvalidOptionError(`${name}.sentinel.sentinels`, 'expected a non-empty array of { host, port }')
    checkKeys(s, SENTINEL_KEYS, `${name}.sentinel`)
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
    return { name, client: new Cluster(config.cluster, clusterOptions), address: 'cluster ' + config.cluster.map(describeNode).join(','), owned: true, startupNodes: config.cluster.map(nodeAddress) }
  }
  if (config.sentinel !== undefined) {
    const { sentinels, name: group, options } = config.sentinel
    const client = new Redis({ ...safe, ...config.options, ...options, sentinels, name: group })
    return { name, client, address: `sentinel master "${group}" via ${sentinels.map(describeNode).join(',')}`, owned: true }
  }
  const memory = config.url === undefined ? undefined : memoryName(config.url)
  if (memory !== undefined) {
    return { name, client: new MemoryRedis(memory, { lazyConnect: true, enableOfflineQueue: false }) as unknown as Redis, address: `memory://${memory}`, owned: true }
  }
  const client = config.url !== undefined
    ? new Redis(config.url, { ...safe, ...config.options })
    : new Redis({ ...safe, ...config.options })
  return { name, client, address: describeClient(client), owned: true }
}

/** The memory engine's keyspace name of a `memory://name` URL ('default' for `memory://`), or undefined for another URL. */
export function memoryName (url: string): string | undefined {
  if (!url.startsWith('memory://')) return undefined
  const name = url.slice('memory://'.length).replace(/\/+$/, '')
  try {
    return decodeURIComponent(name) || 'default'
  } catch {
    return name // a stray % is part of the name
  }
}

/** Socket errors that say the server cannot be reached as configured, rather than that it is slow. */
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'refused the connection (ECONNREFUSED)',
  ENOTFOUND: 'cannot be resolved: no such host (ENOTFOUND)',
  EHOSTUNREACH: 'cannot be reached: no route to host (EHOSTUNREACH)',
  ENETUNREACH: 'cannot be reached: network unreachable (ENETUNREACH)'
}

/** How long startup keeps retrying a server that refused the connection (it may be starting too). */
export const REFUSED_GRACE_MS = 1000

/**
 * Connects, waits until the client is ready and checks the server version. Rejects with
 * FRS_REDIS_UNREACHABLE naming the address (the last socket error is its cause) when the
 * client is not ready within `timeoutMs`, or about a second after the server refused the
 * connection or its host was not found; with FRS_REDIS_VERSION for a server older than
 * {@link MIN_REDIS_VERSION}. After startup ioredis keeps reconnecting forever.
 */
export async function waitReady (conn: ManagedConnection, timeoutMs: number): Promise<void> {
  const { client } = conn
  defineScripts(client, coreScripts)
  if (client.status !== 'ready') await connected(conn, timeoutMs)
  await checkVersion(conn, timeoutMs)
}

async function connected (conn: ManagedConnection, timeoutMs: number): Promise<void> {
  const { client } = conn
  let lastError: unknown
  let onError: (err: unknown) => void = () => {}
  let onReady: () => void = () => {}
  const timers: NodeJS.Timeout[] = []
  const started = Date.now()
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve
      const refused = (why: string) => {
        if (timers.length > 1) return
        const left = Math.max(0, timeoutMs - (Date.now() - started))
        if (left > REFUSED_GRACE_MS) timers.push(setTimeout(() => reject(new RedisUnreachableError(conn.name, conn.address, why, { cause: lastError })), REFUSED_GRACE_MS))
      }
      let probing = false
      onError = (err) => {
        lastError = err
        const why = UNREACHABLE[(err as { code?: string } | null)?.code ?? '']
        if (why !== undefined) return refused(why)
        // A Cluster says only "Failed to refresh slots cache": ask the startup nodes directly.
        if (conn.startupNodes === undefined || probing || timers.length > 1) return
        probing = true
        Promise.all(conn.startupNodes.map((n) => probe(n, REFUSED_GRACE_MS))).then((codes) => {
          probing = false
          const reasons = codes.map((c) => UNREACHABLE[c ?? ''])
          if (reasons.every((r) => r !== undefined)) refused(`${reasons[0] as string} on every startup node`)
        }, () => { probing = false })
      }
      client.on('error', onError)
      client.once('ready', onReady)
      timers.push(setTimeout(() => {
        reject(new RedisUnreachableError(conn.name, conn.address, `was not ready within ${timeoutMs}ms`, { cause: lastError }))
      }, timeoutMs))
      if (client.status === 'wait') client.connect().catch(onError)
    })
  } finally {
    for (const timer of timers) clearTimeout(timer)
    client.off('error', onError)
    client.off('ready', onReady)
  }
}

/**
 * The oldest Redis the suite runs on: one-time link tokens are used up with GETDEL (6.2);
 * every other command and script works from Redis 5 (scripts that read TIME before writing).
 */
export const MIN_REDIS_VERSION = '6.2.0'

/**
 * Asks every master (INFO server) for its version and refuses one older than
 * {@link MIN_REDIS_VERSION}. When INFO is not allowed (ACL, a renamed command) or does not
 * answer within `timeoutMs`, nothing is known and the check is skipped.
 */
async function checkVersion (conn: ManagedConnection, timeoutMs: number): Promise<void> {
  const nodes: Redis[] = isCluster(conn.client) ? conn.client.nodes('master') : [conn.client]
  for (const node of nodes) {
    let timer: NodeJS.Timeout | undefined
    const info = await Promise.race([
      node.info('server'),
      new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs) })
    ]).catch(() => undefined).finally(() => clearTimeout(timer))
    const version = typeof info === 'string' ? /^redis_version:([^\r\n]+)/m.exec(info)?.[1]?.trim() : undefined
    if (version !== undefined && olderThan(version, MIN_REDIS_VERSION)) {
      const address = isCluster(conn.client) ? `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}` : conn.address
      throw new RedisVersionError(conn.name, address, version, MIN_REDIS_VERSION.replace(/\.0$/, ''))
    }
  }
}

/** True when dotted version `a` is before `b` (`'6.0.16'` before `'6.2.0'`); unparsable parts count as 0. */
export function olderThan (a: string, b: string): boolean {
  const pa = a.split('.').map((n) => Number.parseInt(n, 10) || 0)
  const pb = b.split('.').map((n) => Number.parseInt(n, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0
    const y = pb[i] ?? 0
    if (x !== y) return x < y
  }
  return false
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
  if (o.host?.startsWith('memory://') === true) return o.host
  if (o.sentinels) return `sentinel master "${o.name ?? ''}"`
  if (o.path) return o.path
  return `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`
}

function nodeAddress (node: ClusterNode): { host: string, port: number } {
  if (typeof node === 'number') return { host: '127.0.0.1', port: node }
  if (typeof node === 'string') {
    try {
      const u = new URL(/^[a-z]+:\/\//i.test(node) ? node : `redis://${node}`)
      return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) }
    } catch { return { host: node, port: 6379 } }
  }
  return { host: node.host ?? '127.0.0.1', port: node.port ?? 6379 }
}

/** The socket error code of a plain TCP connect to `node`, or undefined when it connects (or is merely slow). */
function probe (node: { host: string, port: number }, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: node.host, port: node.port })
    const done = (code: string | undefined) => { clearTimeout(timer); socket.destroy(); resolve(code) }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    socket.once('connect', () => done(undefined))
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'ERROR'))
  })
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
