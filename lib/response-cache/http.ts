// Pure HTTP caching rules for the response cache: keys, cacheability, validators. No fastify
// import and no Redis: everything here is tested without either.
import { createHash } from 'node:crypto'

/** One cached response. */
export interface ResponseEntry {
  status: number
  /** Allow-listed response headers, lower-case names. */
  headers: Record<string, string>
  body: Buffer
  /** The handler's ETag, or a strong validator from the body: `"<base64url sha256>"`. */
  etag: string
  /** Milliseconds since the epoch when the handler produced it. */
  storedAt: number
  /** The route's tags for this entry (sent to CDNs with `tagHeader`). */
  tags: readonly string[]
}

/** Headers a cached entry keeps by default (besides content-type, always kept). */
export const DEFAULT_KEPT_HEADERS: readonly string[] = Object.freeze([
  'content-type', 'content-language', 'content-encoding', 'content-disposition', 'link', 'last-modified', 'vary', 'x-content-type-options', 'cache-control'
])

/**
 * The query string with its parameters sorted by name, so that `?b=2&a=1` and `?a=1&b=2`
 * share one entry. The values of a repeated name keep their order (`?sort=name&sort=price`
 * is not `?sort=price&sort=name`): the sort is stable and compares names only.
 */
export function normalizeQuery (rawUrl: string): string {
  const i = rawUrl.indexOf('?')
  if (i === -1) return ''
  const params = [...new URLSearchParams(rawUrl.slice(i + 1))]
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
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
  /** Values of the headers the entry varies on, in the order of their sorted names. */
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

/**
 * The key's vary part names its headers too, so that entries keyed by different header sets
 * (a route that learned a header from a response's `Vary`) never meet: `[names, values]`.
 */
export function varyPart (names: readonly string[], values: Array<string | undefined>): Array<string | undefined> {
  return names.length === 0 ? values : [names.join(','), ...values]
}

/**
 * The header names of a `Vary` response header, lower-case; `'*'` when it varies on
 * something no request header says (RFC 9110 §12.5.5: such a response is never stored).
 */
export function parseVary (value: unknown): string[] | '*' {
  if (value === undefined || value === null) return []
  const names: string[] = []
  for (const part of [value].flat().join(',').split(',')) {
    const name = part.trim().toLowerCase()
    if (name === '*') return '*'
    if (name !== '' && !names.includes(name)) names.push(name)
  }
  return names
}

/** One `Vary` value from lists of names (each name once, first spelling kept). */
export function mergeVary (...lists: ReadonlyArray<readonly string[]>): string {
  const seen = new Set<string>()
  const out: string[] = []
  for (const name of lists.flat()) {
    const lower = name.toLowerCase()
    if (!seen.has(lower)) {
      seen.add(lower)
      out.push(name)
    }
  }
  return out.join(', ')
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
 * True when the request's conditional headers say the client's copy is current: a matching
 * `If-None-Match`, or, only when the request has no `If-None-Match` (RFC 9110 §13.1.3), an
 * `If-Modified-Since` not earlier than the entry's `Last-Modified`.
 */
export function notModified (ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, etag: string, lastModified: string | undefined): boolean {
  if (ifNoneMatch !== undefined) return ifNoneMatchMatches(ifNoneMatch, etag)
  if (ifModifiedSince === undefined || lastModified === undefined) return false
  const since = Date.parse(ifModifiedSince)
  const modified = Date.parse(lastModified)
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since
}

/**
 * True when a request asks caches not to answer from storage without revalidating:
 * `Cache-Control: no-cache` or `max-age=0`, or `Pragma: no-cache` without a Cache-Control
 * (RFC 9111 §5.2.1, §5.4).
 */
export function requestsRevalidation (cacheControl: string | undefined, pragma: string | undefined): boolean {
  if (cacheControl === undefined) return pragma !== undefined && /(^|[\s,])no-cache([\s,]|$)/i.test(pragma)
  return /(^|[\s,])(no-cache|max-age\s*=\s*"?0+"?)([\s,;]|$)/i.test(cacheControl)
}

/**
 * A Cache-Control value for a per-user response: `private`, without the directives meant for
 * shared caches (`public`, `s-maxage`, `proxy-revalidate`), whatever the handler or route said.
 */
export function privateCacheControl (value: string): string {
  const kept = value.split(',').map((d) => d.trim()).filter((d) => d !== '' && !/^(public|private|s-maxage|proxy-revalidate)(\s*=.*)?$/i.test(d))
  return ['private', ...kept].join(', ')
}

/** A set of cookie names (a `Set`, or a view over several). */
export interface CookieNames { has: (name: string) => boolean }
const NO_COOKIES: CookieNames = { has: () => false }

/**
 * Why a response may not be stored, or undefined when it may. `ownCookies` are cookies that
 * do not count (the session cookie that a session plugin renews on a per-user entry: it is
 * never stored, and every response gets its own).
 */
export function uncacheableReason (status: number, statuses: readonly number[], headers: Record<string, unknown>, ownCookies: CookieNames = NO_COOKIES): string | undefined {
  if (!statuses.includes(status)) return `status ${status}`
  const cookies = headers['set-cookie']
  if (cookies !== undefined && [cookies].flat().some((c) => !ownCookies.has(String(c).split('=')[0]?.trim() ?? ''))) return 'sets a cookie'
  const cc = String(headers['cache-control'] ?? '').toLowerCase()
  if (/(^|[\s,])(private|no-store)([\s,=]|$)/.test(cc)) return `cache-control: ${cc}`
  if (parseVary(headers.vary) === '*') return 'vary: *'
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
