import t from 'tap'
import { randomBytes, randomInt } from 'node:crypto'
import { Keyspace, MAX_PART_LENGTH, escapeGlob, escapePart, hashed, keyGlob } from '../lib/core/keys.js'
import type { KeyPart } from '../lib/core/keys.js'

const ks = new Keyspace({ prefix: 'app', feature: 'cache', namespace: 'feed', version: 3 })

t.test('layout: prefix:feature:namespace:v{version}:parts', async (t) => {
  t.equal(ks.key('user', 42), 'app:cache:feed:v3:user:42')
  t.equal(ks.base, 'app:cache:feed:v3:')
  t.equal(new Keyspace({ feature: 'rl' }).key('x'), 'frs:rl:default:v1:x', 'defaults')
  t.equal(ks.with({ version: 4 }).key('a'), 'app:cache:feed:v4:a')
  t.equal(ks.with({ namespace: 'other' }).key('a'), 'app:cache:other:v3:a')
})

t.test('known collisions are kept apart', async (t) => {
  t.not(ks.key('ab', 'c'), ks.key('a', 'bc'))
  t.not(ks.key('a:b'), ks.key('a', 'b'))
  t.not(ks.key('user1', '2x'), ks.key('user12', 'x'))
  t.not(ks.key('%3A'), ks.key(':'))
  t.not(ks.key(1), ks.key('1 '))
  t.not(ks.key('#abc'), ks.key(hashed('x')))
  t.not(ks.taggedKey(['a'], 'b'), ks.key('{a}', 'b'))
  t.not(new Keyspace({ feature: 'cache', namespace: 'a:b' }).key('c'), new Keyspace({ feature: 'cache', namespace: 'a' }).key('b:c'))
})

function randomPart (): string {
  const alphabet = 'ab:%{}*?[]\\#^ \n\t\x00é😀'
  const len = randomInt(0, 8)
  let s = ''
  for (let i = 0; i < len; i++) s += [...alphabet][randomInt(0, [...alphabet].length)]
  return s
}

t.test('escaping is injective on many random part lists', async (t) => {
  const seen = new Map<string, string>()
  let collisions = 0
  for (let i = 0; i < 20000; i++) {
    const parts = Array.from({ length: randomInt(1, 4) }, randomPart)
    const id = JSON.stringify(parts)
    const key = ks.key(...parts)
    const before = seen.get(key)
    if (before !== undefined && before !== id) collisions++
    seen.set(key, id)
  }
  t.equal(collisions, 0, `${seen.size} distinct part lists, no two share a key`)
})

t.test('escaped parts carry no separator, brace, glob character or whitespace', async (t) => {
  const dirty: string[] = []
  for (let i = 0; i < 2000; i++) {
    const escaped = escapePart(randomPart())
    if (/[:{}*?[\]\\\s\x00-\x1f]/.test(escaped)) dirty.push(escaped) // eslint-disable-line no-control-regex
  }
  t.same(dirty, [], '2000 random parts escaped clean')
})

t.test('long and hashed parts are digests', async (t) => {
  const long = 'x'.repeat(MAX_PART_LENGTH + 1)
  const key = ks.key(long)
  t.ok(key.length < 100, 'bounded length')
  t.match(key, /:#[A-Za-z0-9_-]{43}$/)
  t.equal(ks.key('x'.repeat(MAX_PART_LENGTH)).length, ks.base.length + MAX_PART_LENGTH, 'at the limit: kept')
  t.not(ks.key(long), ks.key(long + 'y'))
  const secret = randomBytes(16).toString('hex')
  t.notMatch(ks.key(hashed(secret)), secret, 'a hashed part never shows')
  t.equal(ks.key(hashed(secret)), ks.key(hashed(secret)), 'stable')
})

t.test('hash tags', async (t) => {
  t.equal(ks.taggedKey(['route', 'user:1'], 'minute'), 'app:cache:feed:v3:{route:user%3A1}:minute')
  t.equal(ks.taggedKey(['x']), 'app:cache:feed:v3:{x}')
  t.equal(ks.taggedKeyWith('route', 'a:b')('ip', '::1'), ks.taggedKey(['route', 'a:b', 'ip', '::1']), 'taggedKeyWith is taggedKey with the first parts fixed')
  t.equal(ks.taggedKeyWith()('x', 7), ks.taggedKey(['x', 7]))
  t.equal(ks.taggedKeyWith('x')(), ks.taggedKey(['x']))
  t.throws(() => ks.taggedKeyWith()(), { code: 'FRS_INVALID_KEY_PART' })
  t.throws(() => ks.taggedKey([]), { code: 'FRS_INVALID_KEY_PART' })
  // user input cannot open a second tag or close ours early
  t.equal(ks.taggedKey(['a}b{c']).match(/[{}]/g)?.length, 2)
})

t.test('glob escaping keeps only * as a wildcard', async (t) => {
  t.equal(escapeGlob('user:*'), 'user%3A*')
  t.equal(escapeGlob('a?[b]\\*'), 'a%3F%5Bb%5D%5C*')
  t.equal(ks.pattern('post:*'), 'app:cache:feed:v3:post%3A*')
  t.equal(ks.pattern(), 'app:cache:feed:v3:*')
  t.throws(() => escapeGlob(''), { code: 'FRS_INVALID_KEY_PART' })
})

t.test('bad parts and options', async (t) => {
  t.throws(() => ks.key(), { code: 'FRS_INVALID_KEY_PART' })
  t.throws(() => ks.key(Number.NaN), { code: 'FRS_INVALID_KEY_PART', message: /NaN/ })
  t.throws(() => ks.key(undefined as unknown as KeyPart), { code: 'FRS_INVALID_KEY_PART', message: /undefined/ })
  t.throws(() => ks.key({} as KeyPart), { code: 'FRS_INVALID_KEY_PART' })
  t.throws(() => new Keyspace({ feature: 'a:b' }), { code: 'FRS_INVALID_OPTION', message: /"feature"/ })
  t.throws(() => new Keyspace({ feature: 'x', prefix: '{x}' }), { code: 'FRS_INVALID_OPTION', message: /"prefix"/ })
  t.throws(() => new Keyspace({ feature: 'x', version: -1 }), { code: 'FRS_INVALID_OPTION', message: /"version"/ })
  t.throws(() => new Keyspace({ feature: 'x', version: 1.5 }), { code: 'FRS_INVALID_OPTION' })
})

/** SCAN MATCH semantics for our patterns: `*` is the only glob character left unescaped. */
function matches (pattern: string, key: string): boolean {
  return new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 's').test(key)
}

t.test('reserved keys: no pattern of any namespace reaches them; full keys are never digests', async (t) => {
  const reserved = [ks.reservedKey(['app', 'gen'], 't', 'draft'), ks.reservedKey(['lock', 'job']), ks.with({ namespace: 'other' }).reservedKey(['fill', hashed('x')])]
  t.equal(reserved[0], 'app:cache:{app:gen}:feed:v3:t:draft')
  for (let i = 0; i < 300; i++) {
    const ns = i % 3 === 0 ? 'feed' : randomBytes(randomInt(1, 8)).toString('latin1')
    const glob = ['*', '*gen*', '*lock*', '{*', '*draft', '*}*'][i % 6] as string
    const pattern = ks.with({ namespace: ns }).pattern(glob)
    for (const key of reserved) t.notOk(matches(pattern, key), `${pattern} does not match ${key}`, { diagnostic: false })
  }
  const long = 'q:42:' + 'x'.repeat(MAX_PART_LENGTH * 2)
  t.equal(ks.fullKey(long), ks.base + 'q%3A42%3A' + 'x'.repeat(MAX_PART_LENGTH * 2))
  t.ok(matches(ks.pattern('q:42:*'), ks.fullKey(long)), 'a pattern matches a full key of any length')
})

t.test('keyGlob: wildcards from the template, literal values', async (t) => {
  t.equal(ks.pattern(keyGlob`user:${'a*b'}*`), 'app:cache:feed:v3:user%3Aa%2Ab*')
  t.equal(ks.pattern(keyGlob`*:${7}:${'?'}`), 'app:cache:feed:v3:*%3A7%3A%3F')
  t.ok(matches(ks.pattern(keyGlob`user:${'*'}*`), ks.key('user:*x')))
  t.notOk(matches(ks.pattern(keyGlob`user:${'*'}*`), ks.key('user:x')))
  t.throws(() => keyGlob`${{} as string}`, { code: 'FRS_INVALID_KEY_PART' })
  t.throws(() => ks.pattern(keyGlob``), { code: 'FRS_INVALID_KEY_PART' })
})
