// A session record is `1:<createdMs>:<maxAgeMs>:<userLength>:<user><json>` (lib/scripts/session.ts
// reads the same header in Lua). The user id is URI-encoded so that its length in characters
// is its length in bytes, which is what Lua counts.

export interface SessionRecord {
  /** Creation time in ms (Redis clock). */
  created: number
  /** Idle TTL (cookie max age) in ms. */
  maxAge: number
  /** The owner's encoded user id, or `''`. */
  user: string
  data: Record<string, unknown>
}

const HEADER = /^1:(\d+):(\d+):(\d+):/

/** Parses a record; null for anything else (a tombstone). */
export function decodeRecord (value: string): SessionRecord | null {
  const m = HEADER.exec(value)
  if (m === null) return null
  const start = m[0].length
  const end = start + Number(m[3])
  const data: unknown = JSON.parse(value.slice(end))
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return null
  return { created: Number(m[1]), maxAge: Number(m[2]), user: value.slice(start, end), data: data as Record<string, unknown> }
}

/** A record as the write scripts build it (lib/scripts/session.ts): `user` already encoded. */
export function encodeRecord (created: number, maxAge: number, user: string, json: string): string {
  return `1:${created}:${maxAge}:${user.length}:${user}${json}`
}

/** The stored form of a user id; `''` for none. */
export function encodeUser (id: unknown): string {
  return id === undefined || id === null || id === '' ? '' : encodeURIComponent(String(id))
}
