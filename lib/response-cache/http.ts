// Pure HTTP caching rules for the response cache: keys, cacheability, validators. No fastify
// import and no Redis: everything here is tested without either.
import { createHash } from 'node:crypto'

/** One cached response. */
export interface ResponseEntry {
  status: number
  /** Allow-listed response headers, lower-case names. */
  headers: Record<string, string>
  body: Buffer
  /** Strong validator from the body: `"<base64url sha256>"`. */
  etag: string
  /** Milliseconds since the epoch when the handler produced it. */
  storedAt: number
}

/** Headers a cached entry keeps by default (besides content-type, always kept). */
export const DEFAULT_KEPT_HEADERS: readonly string[] = Object.freeze([
  'content-type', 'content-language', 'content-encoding', 'content-disposition', 'link', 'last-modified', 'vary', 'x-content-type-options'
])

/**
 * The query string with its parameters sorted (by name, then value), so that `?b=2&a=1` and
 * `?a=1&b=2` share one entry. Repeated names keep all their values.
 */
export function normalizeQuery (rawUrl: string): string {
  const i = rawUrl.indexOf('?')
  if (i === -1) return ''
  const params = [...new URLSearchParams(rawUrl.slice(i + 1))]
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  return new URLSearchParams(params).toString()
}

/** The path of a URL, without its query string. */
export function pathOf (rawUrl: string): string {
  const i = rawUrl.indexOf('?')
  return i === -1 ? rawUrl : rawUrl.slice(0, i)
}

export interface EntryKeyParts {
  path: string
  query: string
  /** Values of the route's `vary` headers, in the route's order. */
  vary: Array<string | undefined>
  /** The user the entry belongs to; undefined for a shared entry. */
  user?: string
}

/**
 * The cache key of a response. The path comes first, then `|` and the rest, so that every
 * variant of one path matches the glob `<path>|*` (see {@link pathGlob}). JSON for the rest
 * keeps values apart whatever characters they hold.
 */
export function entryKey (parts: EntryKeyParts): string {
  return `${parts.path}|${JSON.stringify([parts.query, parts.vary.map((v) => v ?? null), parts.user ?? null])}`
}

/** Glob for every entry of one path (all queries, vary values and users). */
export function pathGlob (path: string): string {
  return `${pathOf(path)}|*`
}

/** A strong ETag from the body bytes. */
export function strongEtag (body: Buffer): string {
  return '"' + createHash('sha256').update(body).digest('base64url').slice(0, 32) + '"'
}

/**
 * True when `If-None-Match` matches `etag`: a list of tags, `*`, and weak tags compared
 * weakly (RFC 9110 §13.1.2: If-None-Match uses the weak comparison).
 */
export function ifNoneMatchMatches (header: string | undefined, etag: string): boolean {
  if (header === undefined || header === '') return false
  if (header.trim() === '*') return true
  const opaque = etag.replace(/^W\//, '')
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque)
}

/**
 * Why a response may not be stored, or undefined when it may. `ownCookies` are cookies that
 * do not count (the session cookie that a session plugin renews on a per-user entry: it is
 * never stored, and every response gets its own).
 */
export function uncacheableReason (status: number, statuses: readonly number[], headers: Record<string, unknown>, ownCookies: readonly string[] = []): string | undefined {
  if (!statuses.includes(status)) return `status ${status}`
  const cookies = headers['set-cookie']
  if (cookies !== undefined && [cookies].flat().some((c) => !ownCookies.includes(String(c).split('=')[0]?.trim() ?? ''))) return 'sets a cookie'
  const cc = String(headers['cache-control'] ?? '').toLowerCase()
  if (/(^|[\s,])(private|no-store)([\s,=]|$)/.test(cc)) return `cache-control: ${cc}`
  return undefined
}

/** The allow-listed headers of a response, as strings. */
export function keptHeaders (headers: Record<string, unknown>, allow: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of allow) {
    const value = headers[name]
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return out
}

/** The request's `Accept-Encoding` reduced to the one coding a compressing server would pick. */
export function encodingClass (acceptEncoding: string | undefined): string {
  const accepted = new Set<string>()
  for (const item of (acceptEncoding ?? '').toLowerCase().split(',')) {
    const [name = '', ...params] = item.split(';').map((p) => p.trim())
    const q = params.find((p) => p.startsWith('q='))
    if (q === undefined || Number(q.slice(2)) > 0) accepted.add(name)
  }
  return ['br', 'gzip', 'deflate'].find((c) => accepted.has(c)) ?? 'identity'
}
