import t from 'tap'
import { Codec } from '../lib/core/codec.js'

const codec = new Codec()

t.test('values round-trip exactly', async (t) => {
  const values: unknown[] = [
    null, true, false, 0, 42, -7, 1.5, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity, -0,
    '', 'text', '123', '-1', 'ünïcødé ✓',
    [], [1, [2, [3]]], {}, { a: { b: { c: [null, 'x'] } } },
    new Date('2024-02-29T12:34:56.789Z'),
    Buffer.from([0, 1, 2, 255]), Buffer.alloc(0),
    10n, -(2n ** 100n),
    new Map<unknown, unknown>([['a', 1], [2, new Date(0)]]), new Set([1, 'two', 3n]),
    { $t: 'D', v: 5 }, { nested: { $t: 'looks like a tag' } },
    { when: new Date(1), data: Buffer.from('hi'), list: [new Map([[1, 2]])] },
    [{ $t: 1, m: new Map<unknown, unknown>([[new Date(3), new Set([1n, { $t: 'S', v: [NaN] }])]]) }]
  ]
  for (const v of values) {
    const back = codec.decode(codec.encode(v))
    t.same(back, v, `round-trip of ${typeof v} ${String(v)}`)
    t.equal(Object.prototype.toString.call(back), Object.prototype.toString.call(v), 'same type')
  }
  t.ok(Object.is(codec.decode(codec.encode(-0)), -0), '-0 stays -0')
  t.ok(Object.is(codec.decode(codec.encode(NaN)), NaN))
  t.equal(typeof codec.decode(codec.encode(10n)), 'bigint')
  const invalid = codec.decode(codec.encode(new Date(NaN)))
  t.ok(invalid instanceof Date && Number.isNaN(invalid.getTime()), 'an invalid Date stays an invalid Date')
  t.equal(typeof codec.decode(codec.encode('123')), 'string', 'a numeric string stays a string')
})

t.test('safe integers are stored as bare decimals (INCR works on them); others carry a header', async (t) => {
  t.equal(codec.encode(42).toString(), '42')
  t.equal(codec.encode(-7).toString(), '-7')
  t.equal(codec.decode(Buffer.from('9007199254740993')), 9007199254740993n, 'an integer beyond 2^53 (after INCR) reads as a BigInt')
  t.equal(codec.encode(42, false).toString(), 'p42', 'with a header when asked')
  t.equal(codec.decode(codec.encode(42, false)), 42)
  t.equal(codec.encode('x')[0], 0x73)
})

t.test('undefined and functions are refused with clear errors', async (t) => {
  t.throws(() => codec.encode(undefined), { code: 'FRS_CACHE_UNDEFINED' })
  t.throws(() => codec.encode({ f: () => 1 }), { code: 'FRS_CACHE_UNSERIALIZABLE', message: /function at "f"/ })
  t.throws(() => codec.encode(Symbol('s')), { code: 'FRS_CACHE_UNSERIALIZABLE' })
})

t.test('values over the threshold are compressed; either codec reads both algorithms', async (t) => {
  const big = { text: 'lorem ipsum '.repeat(500), when: new Date(5) }
  const deflate = new Codec({ compressThreshold: 1024 })
  const brotli = new Codec({ compressThreshold: 1024, compression: 'brotli' })
  const d = deflate.encode(big)
  const b = brotli.encode(big)
  t.equal(d[0], 0x7a, 'deflate header')
  t.equal(b[0], 0x79, 'brotli header')
  t.ok(d.length < 500 && b.length < 500, `compressed (${d.length}, ${b.length} bytes of ~6000)`)
  t.same(brotli.decode(d), big)
  t.same(deflate.decode(b), big)
  t.equal(deflate.encode('small')[0], 0x73, 'under the threshold: not compressed')
  t.equal(new Codec({ compressThreshold: false }).encode(big)[0], 0x74, 'compression off')
  const bytes = Buffer.alloc(5000, 7)
  t.same(deflate.decode(deflate.encode(bytes)), bytes, 'a Buffer compresses and round-trips')
})

t.test('foreign or corrupt bytes throw FRS_CACHE_CORRUPT, never anything else', async (t) => {
  const bad = [
    Buffer.alloc(0), Buffer.from('hello'), Buffer.from('12abc'), Buffer.from('p{broken'),
    Buffer.from('t{"$t":"Q","v":1}'), Buffer.from([0x7a, 0x70, 1, 2, 3]), Buffer.from([0x7a, 0x7a]),
    Buffer.from([0x79, 0x74, 0xff]), Buffer.from([0xff, 0xfe]), Buffer.from('\u0000')
  ]
  for (const bytes of bad) t.throws(() => codec.decode(bytes), { code: 'FRS_CACHE_CORRUPT' }, `corrupt ${bytes.toString('hex')}`)
})

t.test('lone surrogates and own __proto__ keys round-trip exactly', async (t) => {
  for (const s of ['\ud800', 'a\udc00b', '\ud83d\ude00', 'x'.repeat(2000) + '\ud800']) {
    t.equal(codec.decode(codec.encode(s)), s, `string of ${s.length} chars`)
  }
  t.equal(codec.encode('\ud83d\ude00')[0], 0x73, 'a well-formed string keeps the string format')
  const obj = JSON.parse('{"__proto__": {"admin": true}, "m": 1}') as Record<string, unknown>
  const back = codec.decode(codec.encode({ obj, list: [obj], map: new Map([['k', obj]]) })) as { obj: object, list: object[], map: Map<string, object> }
  for (const o of [back.obj, back.list[0], back.map.get('k')]) {
    t.ok(Object.hasOwn(o as object, '__proto__'), 'an own key')
    t.equal(Object.getPrototypeOf(o), Object.prototype, 'not a prototype')
  }
})
