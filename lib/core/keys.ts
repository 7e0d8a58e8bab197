import { hash } from 'node:crypto'
import { InvalidKeyPartError, InvalidOptionError } from './errors.js'

/** A key part: strings and numbers are escaped; `hashed(value)` stores only a digest of the value. */
export type KeyPart = string | number | HashedPart

/** A part that goes into a key only as a SHA-256 digest (untrusted or secret input). */
export interface HashedPart { readonly hashed: string }

export interface KeyspaceOptions {
  /** First segment of every key; letters, digits, `_`, `-`, `.`, `/` only. @default 'frs' */
  prefix?: string
  /** The feature that owns the keys, e.g. `'cache'`, `'rl'`. */
  feature: string
  /** A scope inside the feature. @default 'default' */
  namespace?: string
  /** A version number; raising it makes every older key unreachable. @default 1 */
  version?: number
}

/** Parts longer than this are stored as a digest: Redis keys stay short and bounded. */
export const MAX_PART_LENGTH = 128

const SAFE_SEGMENT = /^[A-Za-z0-9_\-./]+$/
// `%` first so that the escaping is injective; `:` separates parts; braces would make a
// Cluster hash tag; glob characters would widen a SCAN MATCH; `#` marks a digest.
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be escaped
const RESERVED = /[%:{}*?[\]\\#^\s\x00-\x1f\x7f]/g

/** Marks a value to be stored in keys only as a digest. */
export function hashed (value: string | number): HashedPart {
  return { hashed: String(value) }
}

/** Escapes one part so that different part lists never produce one key. */
export function escapePart (part: KeyPart): string {
  return escapeOne(part, true)
}

function escapeOne (part: KeyPart, digestLong: boolean): string {
  if (typeof part === 'object' && part !== null && typeof part.hashed === 'string') return digest(part.hashed)
  if (typeof part === 'number') {
    if (!Number.isFinite(part)) throw new InvalidKeyPartError(`the number ${part}`)
    return escapeString(String(part))
  }
  if (typeof part !== 'string') throw new InvalidKeyPartError(`a value of type ${typeof part}`)
  if (digestLong && part.length > MAX_PART_LENGTH) return digest(part)
  return escapeString(part)
}

/**
 * A glob whose literal text is kept apart from its wildcards, built with the {@link keyGlob}
 * template tag: the pieces between wildcards match only themselves, whatever they hold.
 */
export interface KeyGlob { readonly literals: readonly string[] }

/**
 * A glob for `Keyspace.pattern()` and `cache.deletePattern()` in which user input stays
 * literal: a `*` written in the template is a wildcard, and every interpolated value (even
 * one holding `*`) matches only itself. `keyGlob\`user:${input}*\``.
 */
export function keyGlob (strings: TemplateStringsArray, ...values: Array<string | number>): KeyGlob {
  const literals: string[] = ['']
  strings.forEach((text, i) => {
    const pieces = text.split('*')
    literals[literals.length - 1] += pieces[0] as string
    for (const piece of pieces.slice(1)) literals.push(piece)
    if (i < values.length) {
      const value = values[i]
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) throw new InvalidKeyPartError(`a pattern value of type ${typeof value}`)
      literals[literals.length - 1] += String(value)
    }
  })
  return Object.freeze({ literals: Object.freeze(literals) })
}

/**
 * Escapes a user's glob for SCAN MATCH: `*` stays a wildcard, every other character
 * (including `?`, `[`, `]` and `\`) matches only itself.
 */
export function escapeGlob (glob: string | KeyGlob): string {
  if (typeof glob === 'object' && glob !== null && Array.isArray(glob.literals)) {
    if (glob.literals.join('') === '' && glob.literals.length === 1) throw new InvalidKeyPartError('a pattern must not be empty')
    return glob.literals.map(escapeString).join('*')
  }
  if (typeof glob !== 'string' || glob.length === 0) throw new InvalidKeyPartError('a pattern must be a non-empty string or a keyGlob`…`')
  return glob.split('*').map(escapeString).join('*')
}

// RESERVED without the g flag (whose `test` would keep state between calls)
const HAS_RESERVED = new RegExp(RESERVED.source)

function escapeString (value: string): string {
  if (!HAS_RESERVED.test(value)) return value
  return value.replace(RESERVED, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
}

function digest (value: string): string {
  return '#' + hash('sha256', value, 'base64url')
}

function checkSegment (value: string, name: string): string {
  if (typeof value !== 'string' || !SAFE_SEGMENT.test(value)) {
    throw new InvalidOptionError(name, `expected letters, digits, "_", "-", "." or "/", got ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * Builds every key of one feature: `{prefix}:{feature}:{namespace}:v{version}:{parts…}`.
 * Parts are escaped, so `key('ab', 'c')` and `key('a', 'bc')` never meet.
 */
export class Keyspace {
  readonly prefix: string
  readonly feature: string
  readonly namespace: string
  readonly version: number
  /** `{prefix}:{feature}:{namespace}:v{version}:` — every key of this keyspace starts with it. */
  readonly base: string

  readonly #options: KeyspaceOptions

  constructor (opts: KeyspaceOptions) {
    this.#options = { ...opts }
    this.prefix = checkSegment(opts.prefix ?? 'frs', 'prefix')
    this.feature = checkSegment(opts.feature, 'feature')
    this.namespace = escapePart(opts.namespace ?? 'default')
    const version = opts.version ?? 1
    if (!Number.isSafeInteger(version) || version < 0) throw new InvalidOptionError('version', `expected a non-negative integer, got ${version}`)
    this.version = version
    this.base = `${this.prefix}:${this.feature}:${this.namespace}:v${version}:`
  }

  /** A key from parts. */
  key (...parts: KeyPart[]): string {
    if (parts.length === 0) throw new InvalidKeyPartError('a key needs at least one part')
    return this.base + parts.map(escapePart).join(':')
  }

  /**
   * A key whose parts are escaped but never replaced by a digest, however long: a
   * `pattern()` matches it as it matches a short one. For keys that patterns must reach.
   */
  fullKey (...parts: Array<string | number>): string {
    if (parts.length === 0) throw new InvalidKeyPartError('a key needs at least one part')
    return this.base + parts.map((p) => escapeOne(p, false)).join(':')
  }

  /**
   * A key of the feature's own records (invalidation records, locks):
   * `{prefix}:{feature}:{tag…}:{namespace}:v{version}:{parts…}`. The hash tag stands where a
   * namespace stands in every other key, and an escaped namespace never holds a brace, so no
   * `pattern()` of any namespace of this feature reaches it.
   */
  reservedKey (tag: KeyPart[], ...parts: KeyPart[]): string {
    if (tag.length === 0) throw new InvalidKeyPartError('a hash tag needs at least one part')
    let key = `${this.prefix}:${this.feature}:{${tag.map(escapePart).join(':')}}:${this.namespace}:v${this.version}`
    for (const part of parts) key += ':' + escapePart(part)
    return key
  }

  /**
   * A key whose `tag` parts form its Cluster hash tag: keys with the same tag land on one
   * slot, so that one script may touch them together.
   */
  taggedKey (tag: KeyPart[], ...parts: KeyPart[]): string {
    if (tag.length === 0) throw new InvalidKeyPartError('a hash tag needs at least one part')
    const head = '{' + tag.map(escapePart).join(':') + '}'
    return parts.length === 0 ? this.base + head : this.base + head + ':' + parts.map(escapePart).join(':')
  }

  /**
   * `taggedKey` with the tag's first parts escaped once: `taggedKeyWith('r', id)(...rest)`
   * equals `taggedKey(['r', id, ...rest])`. For keys built on every request.
   */
  taggedKeyWith (...fixed: KeyPart[]): (...rest: KeyPart[]) => string {
    const head = this.base + '{' + fixed.map(escapePart).join(':')
    return (...rest) => {
      if (fixed.length === 0 && rest.length === 0) throw new InvalidKeyPartError('a hash tag needs at least one part')
      let key = head
      for (let i = 0; i < rest.length; i++) key += (fixed.length === 0 && i === 0 ? '' : ':') + escapePart(rest[i] as KeyPart)
      return key + '}'
    }
  }

  /**
   * A SCAN MATCH pattern for keys of this keyspace whose parts match `glob`: in a string, `*`
   * is the only wildcard; put user input in with {@link keyGlob} so that it stays literal.
   */
  pattern (glob: string | KeyGlob = '*'): string {
    return this.base + escapeGlob(glob)
  }

  /** The same feature under another namespace or version. */
  with (opts: { namespace?: string, version?: number }): Keyspace {
    return new Keyspace({ ...this.#options, ...opts })
  }
}
