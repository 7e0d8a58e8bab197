import type { Cluster, Redis } from 'ioredis'
import type { Keyspace } from '../core/index.js'
import type { LocalTier } from '../core/index.js'

/** What the session store and its per-user index are built with (resolved by the session plugin). */
export interface SessionStoreOptions {
  client: Redis | Cluster
  keyspace: Keyspace
  /** Idle timeout in ms when the cookie has no max age. */
  idleTimeout: number
  /** Absolute lifetime in ms from creation; rolling renewal never passes it. */
  absoluteTimeout: number
  /** Renew the idle TTL on every read. */
  rolling: boolean
  /** How long a destroyed id stays blocked, in ms. */
  tombstoneTtl: number
  /** The session field that holds the user id. */
  userIdField: string
  /** The most sessions one user may have; older ones are ended. */
  maxSessionsPerUser: number
  /** Where changes and ends of sessions are published, for local caches. */
  channel: string
  /** This instance's local cache of recent reads, if any. */
  cache?: LocalTier<string>
}
