// The shared connections: opened (or adopted) from one options object, ready before use,
// reached by name, reported on by health checks, and closed together. The Fastify plugin
// decorates them; any other door uses the same pool.
import type { Cluster, Redis } from 'ioredis'
import type { WarnLogger } from './circuit-breaker.js'
import { coalesceWrites } from './coalesce.js'
import { checkConnectionConfig, closeConnection, CONNECTION_KEYS, createConnection, waitReady } from './connection.js'
import type { ConnectionConfig, ManagedConnection } from './connection.js'
import type { Duration } from './duration.js'
import { parsePositiveDuration } from './duration.js'
import { InvalidOptionError, UnknownConnectionError } from './errors.js'
import { describeClient } from './events.js'
import { checkHealth } from './health.js'
import type { HealthReport } from './health.js'
import { Keyspace } from './keys.js'
import { checkKeys, optionKeys, REGISTER_KEYS } from './options.js'
import { throttledWarn } from './throttle.js'

/** The options of the shared connections (the `redis` plugin's options). */
export interface PoolOptions extends ConnectionConfig {
  /**
   * Further connections by name, for split databases: `{ sessions: 'redis://…/2' }`.
   * Feature plugins take `connection: 'sessions'`; without it they use the default connection.
   * A value may come straight from the environment (`process.env.REDIS_SESSIONS_URL`);
   * `undefined` stops startup with an error naming the connection.
   * @default {}
   */
  connections?: Record<string, string | ConnectionConfig | undefined>
  /** First segment of every key the suite writes. @default 'frs' */
  prefix?: string
  /**
   * How long startup waits for each connection to be ready before it fails (a refused
   * connection or an unknown host fails after about a second). Must be shorter than
   * Fastify's `pluginTimeout` (10 s by default). @default '5s'
   */
  connectTimeout?: Duration
  /** How long any command may wait for its reply (ioredis `commandTimeout`); not applied to adopted clients. @default '1s' */
  commandTimeout?: Duration
  /** How long `close()` waits for QUIT before it disconnects. @default '2s' */
  closeTimeout?: Duration
  /**
   * Send the commands of one event-loop turn in one socket write (cork until the turn ends),
   * as node-redis does: fewer syscalls under load, at the price of a command waiting for the
   * rest of its turn. Not applied to adopted clients. @default true
   */
  coalesceWrites?: boolean
  /** Serve `redisHealth()` on a GET route: `true` for `/health/redis`, or a path. Off, since it tells about your servers. @default false */
  healthRoute?: boolean | string
}

/** What features share: settings and the way to reach a connection. */
export interface PoolCore {
  /** The key prefix of the suite. */
  readonly prefix: string
  /** The command timeout in milliseconds. */
  readonly commandTimeout: number
  /** Names of every connection, `default` first. */
  readonly connectionNames: readonly string[]
  /** A keyspace of this prefix for one feature. */
  keyspace: (feature: string, namespace?: string) => Keyspace
  /** Adds a section to `health()` output (a feature's stats). */
  addHealthSection: (name: string, report: () => unknown) => void
  /**
   * Names of the cookies that carry a user's credentials: the session feature adds its
   * cookie's name, and the response cache never serves a shared entry to a request with one.
   */
  readonly credentialCookies: Set<string>
}

export interface ResolvedPoolOptions {
  connections: Array<[string, ConnectionConfig]>
  prefix: string
  connectTimeout: number
  commandTimeout: number
  closeTimeout: number
  healthRoute: string | false
  coalesceWrites: boolean
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/
const KEYS = [...CONNECTION_KEYS, ...REGISTER_KEYS, ...optionKeys<Omit<PoolOptions, keyof ConnectionConfig>>({
  connections: true, prefix: true, connectTimeout: true, commandTimeout: true, closeTimeout: true, coalesceWrites: true, healthRoute: true
})]

/**
 * The pool options, checked (unknown keys, bad URLs, names and durations stop startup), with
 * their defaults. `pluginTimeout` is the framework's limit on startup (0: none).
 */
export function resolvePoolOptions (opts: PoolOptions | undefined, pluginTimeout = 0): ResolvedPoolOptions {
  opts ??= {}
  checkKeys(opts, KEYS, 'redis')
  const { connections = {}, prefix = 'frs', connectTimeout = '5s', commandTimeout = '1s', closeTimeout = '2s', healthRoute = false, coalesceWrites = true } = opts
  const main: ConnectionConfig = { url: opts.url, allowMemoryInProduction: opts.allowMemoryInProduction, options: opts.options, cluster: opts.cluster, clusterOptions: opts.clusterOptions, sentinel: opts.sentinel, client: opts.client }
  const hasMain = (['url', 'options', 'cluster', 'sentinel', 'client'] as const).some((k) => main[k] !== undefined)
  const defaultConfig = checkConnectionConfig(hasMain ? main : { url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' }, hasMain ? 'redis' : 'REDIS_URL')
  if (connections === null || typeof connections !== 'object' || Array.isArray(connections)) throw new InvalidOptionError('redis.connections', 'expected an object of name → URL or connection settings')
  const list: Array<[string, ConnectionConfig]> = [['default', defaultConfig]]
  for (const [name, config] of Object.entries(connections)) {
    if (!NAME.test(name) || name === 'default') throw new InvalidOptionError(`redis.connections.${name}`, 'a name starts with a letter, has letters, digits, "_" or "-", and is not "default"')
    list.push([name, checkConnectionConfig(config, `redis.connections.${name}`)])
  }
  // Validate the prefix the same way every keyspace will.
  new Keyspace({ prefix, feature: 'core' }) // eslint-disable-line no-new
  if (typeof coalesceWrites !== 'boolean') throw new InvalidOptionError('redis.coalesceWrites', 'expected a boolean')
  if (healthRoute !== false && healthRoute !== true && (typeof healthRoute !== 'string' || !healthRoute.startsWith('/'))) {
    throw new InvalidOptionError('redis.healthRoute', 'expected true, false or a path starting with "/"')
  }
  const connectMs = parsePositiveDuration(connectTimeout, 'redis.connectTimeout')
  // Fastify gives each plugin pluginTimeout to load (0: no limit); a longer wait would end in
  // AVV_ERR_PLUGIN_EXEC_TIMEOUT, which names neither Redis nor the option to change.
  if (pluginTimeout > 0 && connectMs >= pluginTimeout) {
    throw new InvalidOptionError('redis.connectTimeout', `${connectMs}ms is not shorter than Fastify's pluginTimeout (${pluginTimeout}ms), so startup would time out first; lower connectTimeout or raise Fastify({ pluginTimeout })`)
  }
  return Object.freeze({
    connections: list,
    prefix,
    connectTimeout: connectMs,
    commandTimeout: parsePositiveDuration(commandTimeout, 'redis.commandTimeout'),
    closeTimeout: parsePositiveDuration(closeTimeout, 'redis.closeTimeout'),
    healthRoute: healthRoute === true ? '/health/redis' : healthRoute,
    coalesceWrites
  })
}

/** The open connections of one app. */
export interface ConnectionPool {
  readonly options: ResolvedPoolOptions
  readonly core: PoolCore
  /** A connection by name; no name (or `'default'`) gives the default one. Throws FRS_UNKNOWN_CONNECTION for an unknown name. */
  connection: (name?: string) => Redis | Cluster
  /** Pings every connection and reports latency, version, role, memory and key counts, with the features' sections. */
  health: () => Promise<HealthReport>
  /** Closes the connections the pool opened (never adopted clients). */
  close: () => Promise<void>
}

/**
 * Opens every connection and waits until all are ready; when one fails, closes the others
 * and rejects with its error (FRS_REDIS_UNREACHABLE naming it). Connection errors after
 * startup are logged as warnings (at most one per 10 s per connection) while ioredis reconnects.
 */
export async function openPool (options: ResolvedPoolOptions, log: WarnLogger): Promise<ConnectionPool> {
  const defaults = { commandTimeout: options.commandTimeout, connectTimeout: options.connectTimeout }
  const conns = new Map<string, ManagedConnection>()
  for (const [name, config] of options.connections) {
    const conn = createConnection(name, config, defaults)
    if (options.coalesceWrites && conn.owned) coalesceWrites(conn.client)
    conns.set(name, conn)
  }
  const results = await Promise.allSettled([...conns.values()].map((c) => waitReady(c, options.connectTimeout)))
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all([...conns.values()].map((c) => closeConnection(c, 0)))
    throw failed.reason
  }
  for (const conn of conns.values()) {
    if (conn.owned) watchErrors(log, conn)
    describeClient(conn.client, conn.name, options.prefix)
  }

  const sections = new Map<string, () => unknown>()
  const names = Object.freeze([...conns.keys()])
  const connection = (name = 'default'): Redis | Cluster => {
    const conn = conns.get(name)
    if (conn === undefined) throw new UnknownConnectionError(name, names.join(', '))
    return conn.client
  }
  return {
    options,
    connection,
    core: Object.freeze({
      prefix: options.prefix,
      commandTimeout: options.commandTimeout,
      connectionNames: names,
      keyspace: (feature: string, namespace?: string) => new Keyspace({ prefix: options.prefix, feature, namespace }),
      addHealthSection: (name: string, report: () => unknown) => {
        if (name === 'ok' || name === 'connections' || sections.has(name)) throw new InvalidOptionError('addHealthSection', `the section "${name}" is taken`)
        sections.set(name, report)
      },
      credentialCookies: new Set<string>()
    }),
    health: async () => {
      const entries = await Promise.all([...conns].map(async ([name, c]) => [name, await checkHealth(c.client)] as const))
      const report: HealthReport = { ok: entries.every(([, h]) => h.ok), connections: Object.fromEntries(entries) }
      for (const [name, fn] of sections) report[name] = fn()
      return report
    },
    close: async () => {
      await Promise.all([...conns.values()].map((c) => closeConnection(c, options.closeTimeout)))
    }
  }
}

// ioredis emits 'error' on every failed reconnect; an unhandled one would crash the process.
// Swallow them into a warning (at most one per 10 s per connection) and let ioredis reconnect.
function watchErrors (log: WarnLogger, conn: ManagedConnection): void {
  const warn = throttledWarn(log)
  conn.client.on('error', (err: Error) => warn({ err, connection: conn.name, address: conn.address }, 'redis connection error; reconnecting'))
}
