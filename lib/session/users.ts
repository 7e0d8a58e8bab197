import { hashed } from '../core/index.js'
import type { SessionStoreOptions } from './options.js'
import { decodeRecord, encodeUser } from './record.js'

/** One live session of a user, as `listForUser()` gives it. */
export interface UserSession {
  id: string
  /** Creation time, ms since the epoch (Redis clock). */
  createdAt: number
  /** When it ends unless renewed, ms since the epoch (local clock). */
  expiresAt: number
  /** The session data. */
  data: Record<string, unknown>
}

/** What the index needs of the session store: where a session lives, and how to end one. */
export interface SessionEnder {
  key (sessionId: string): string
  destroySession (sessionId: string, onlyUser?: string): Promise<boolean>
}

/**
 * Per-user index of session ids: a sorted set scored by each session's absolute deadline,
 * which rolling renewal can never pass, so the index outlives none of its sessions for long
 * and is trimmed and capped on every add. The index and the sessions live in different
 * Cluster slots: every operation on both is two steps, ordered so that a failure in between
 * leaves only a stale index entry (skipped by reads), never an unindexed session.
 */
export class UserIndex {
  readonly #o: SessionStoreOptions
  readonly #store: SessionEnder

  constructor (opts: SessionStoreOptions, store: SessionEnder) {
    this.#o = opts
    this.#store = store
  }

  key (user: string): string {
    return this.#o.keyspace.key('u', hashed(user))
  }

  /** Adds a session; returns ids pushed out by the cap (their sessions must be ended). */
  add (user: string, sessionId: string, deadline: number): Promise<string[]> {
    return this.#o.client.frsSessionIndexAdd(this.key(user), sessionId, deadline, this.#o.absoluteTimeout, this.#o.maxSessionsPerUser)
  }

  async remove (user: string, ...sessionIds: string[]): Promise<void> {
    if (sessionIds.length > 0) await this.#o.client.zrem(this.key(user), ...sessionIds)
  }

  /** Live sessions of a user, oldest first; stale entries are dropped from the index on the way. */
  async list (userId: string | number): Promise<UserSession[]> {
    const { client } = this.#o
    const user = encodeUser(userId)
    const ids = await client.zrange(this.key(user), '0', '-1')
    const found = await Promise.all(ids.map(async (id) => {
      const key = this.#store.key(id)
      const [value, ttl] = await Promise.all([client.get(key), client.pttl(key)])
      const record = value === null ? null : decodeRecord(value)
      if (record === null || record.user !== user || ttl < 0) return id
      return { id, createdAt: record.created, expiresAt: Date.now() + ttl, data: record.data }
    }))
    await this.remove(user, ...found.filter((f): f is string => typeof f === 'string'))
    return found.filter((f): f is UserSession => typeof f !== 'string')
  }

  /**
   * Ends every session of a user (log out everywhere); returns how many were live. Works
   * from any instance: the next read of a revoked id, anywhere, finds its tombstone.
   */
  async revoke (userId: string | number): Promise<number> {
    const user = encodeUser(userId)
    const ids = await this.#o.client.zrange(this.key(user), '0', '-1')
    const ended = await Promise.all(ids.map((id) => this.#store.destroySession(id, user)))
    // ZREM, not DEL: an entry added meanwhile by a new login stays indexed.
    await this.remove(user, ...ids)
    return ended.filter(Boolean).length
  }
}
