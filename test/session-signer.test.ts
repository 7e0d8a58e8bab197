import t from 'tap'
import { Signer } from '@fastify/cookie'
import { CachingSigner } from '../lib/session/signer.js'

const NEW = 'n'.repeat(40)
const OLD = 'o'.repeat(40)

t.test('answers exactly as the HMAC signer, from the first call and from the cache', async (t) => {
  const plain = new Signer([NEW, OLD], 'sha256')
  const cached = new CachingSigner([NEW, OLD])
  const ids = Array.from({ length: 50 }, (_, i) => `id-${i}-${'x'.repeat(i)}`)
  for (let round = 0; round < 2; round++) {
    for (const id of ids) {
      t.equal(cached.sign(id), plain.sign(id), `sign (round ${round})`)
      const signedNew = plain.sign(id)
      const signedOld = new Signer(OLD).sign(id)
      t.same(cached.unsign(signedNew), { valid: true, renew: false, value: id })
      t.same(cached.unsign(signedOld), { valid: true, renew: true, value: id }, 'an older secret: valid, due for renewal')
    }
  }
  t.same(cached.cached, { signed: 50, verified: 100 })
})

t.test('a forged or tampered cookie is refused every time and never cached', async (t) => {
  const cached = new CachingSigner([NEW])
  const good = cached.sign('victim-id')
  const forged = [
    'victim-id',
    'victim-id.',
    `${good}x`,
    good.slice(0, -1),
    `attacker-id${good.slice(good.indexOf('.'))}`,
    new Signer('a'.repeat(40)).sign('victim-id'),
    `.${good}`,
    ''
  ]
  for (let round = 0; round < 3; round++) {
    for (const value of forged) t.equal(cached.unsign(value).valid, false, `refused: ${JSON.stringify(value)}`)
  }
  t.same(cached.cached, { signed: 1, verified: 0 }, 'nothing invalid was remembered')
  t.equal(cached.unsign(good).valid, true)
  t.same(cached.cached, { signed: 1, verified: 1 })
  // A cached result cannot be changed by its caller.
  const hit = cached.unsign(good) as { valid: boolean }
  t.throws(() => { hit.valid = false })
  t.equal(cached.unsign(good).valid, true)
})

t.test('the caches are bounded: the oldest entries go first, answers stay right', async (t) => {
  const cached = new CachingSigner([NEW], 100)
  const plain = new Signer(NEW)
  for (let i = 0; i < 1000; i++) {
    const id = `id-${i}`
    t.equal(cached.unsign(cached.sign(id)).value, id)
  }
  t.same(cached.cached, { signed: 100, verified: 100 }, 'at most 100 of each')
  for (const i of [0, 500, 999]) t.same(cached.unsign(plain.sign(`id-${i}`)), { valid: true, renew: false, value: `id-${i}` }, `id-${i} (evicted or not)`)
})
