import t from 'tap'
import { encodingClass, entryKey, ifNoneMatchMatches, keptHeaders, normalizeQuery, pathGlob, strongEtag, uncacheableReason } from '../lib/response-cache/http.js'

t.test('query normalization: order does not matter, values do', async (t) => {
  t.equal(normalizeQuery('/a?b=2&a=1'), normalizeQuery('/a?a=1&b=2'))
  t.equal(normalizeQuery('/a?a=2&a=1'), 'a=2&a=1', 'repeated names keep every value in their order')
  t.equal(normalizeQuery('/a?sort=name&b=1&sort=price'), 'b=1&sort=name&sort=price', 'names sorted, values of one name in order')
  t.not(normalizeQuery('/a?sort=name&sort=price'), normalizeQuery('/a?sort=price&sort=name'))
  t.not(normalizeQuery('/a?a=1'), normalizeQuery('/a?a=2'))
  t.equal(normalizeQuery('/a'), '')
  t.equal(normalizeQuery('/a?x=%20y'), normalizeQuery('/a?x=+y'), 'one encoding of a space')
})

t.test('entry keys keep apart what differs', async (t) => {
  const base = { path: '/p', query: '', vary: [] as Array<string | undefined> }
  t.not(entryKey(base), entryKey({ ...base, user: 'u1' }))
  t.not(entryKey({ ...base, user: 'u1' }), entryKey({ ...base, user: 'u2' }))
  t.not(entryKey({ ...base, vary: ['en'] }), entryKey({ ...base, vary: [undefined] }))
  t.not(entryKey({ ...base, vary: ['a,b'] }), entryKey({ ...base, vary: ['a', 'b'] }))
  t.not(entryKey({ ...base, path: '/p|x' }), entryKey({ ...base, query: 'x' }))
  t.ok(entryKey({ ...base, query: 'q=1' }).startsWith('/p|'), 'path first')
  t.equal(pathGlob('/p?x=1'), '/p|*')
})

t.test('If-None-Match', async (t) => {
  const tag = strongEtag(Buffer.from('hello'))
  t.match(tag, /^"[A-Za-z0-9_-]{32}"$/)
  t.not(tag, strongEtag(Buffer.from('hellp')))
  t.ok(ifNoneMatchMatches(tag, tag))
  t.ok(ifNoneMatchMatches(`"x", ${tag}`, tag), 'a list')
  t.ok(ifNoneMatchMatches(`W/${tag}`, tag), 'weak comparison')
  t.ok(ifNoneMatchMatches('*', tag))
  t.notOk(ifNoneMatchMatches('"other"', tag))
  t.notOk(ifNoneMatchMatches(undefined, tag))
  t.notOk(ifNoneMatchMatches('', tag))
})

t.test('cacheability rules', async (t) => {
  t.equal(uncacheableReason(200, [200], {}), undefined)
  t.equal(uncacheableReason(404, [200], {}), 'status 404')
  t.equal(uncacheableReason(404, [200, 404], {}), undefined)
  t.equal(uncacheableReason(200, [200], { 'set-cookie': 'a=b' }), 'sets a cookie')
  t.equal(uncacheableReason(200, [200], { 'set-cookie': 'sessionId=x; Path=/' }, new Set(['sessionId'])), undefined, 'a session renewal on a per-user entry')
  t.equal(uncacheableReason(200, [200], { 'set-cookie': ['sessionId=x', 'promo=1'] }, new Set(['sessionId'])), 'sets a cookie', 'any other cookie')
  t.match(uncacheableReason(200, [200], { 'cache-control': 'private, max-age=60' }), /private/)
  t.match(uncacheableReason(200, [200], { 'cache-control': 'no-store' }), /no-store/)
  t.equal(uncacheableReason(200, [200], { 'cache-control': 'public, max-age=60' }), undefined)
})

t.test('kept headers and encoding class', async (t) => {
  t.same(keptHeaders({ 'content-type': 'text/plain', 'x-secret': '1', link: ['<a>', '<b>'] }, ['content-type', 'link']), { 'content-type': 'text/plain', link: '<a>, <b>' })
  t.equal(encodingClass('gzip, deflate, br'), 'br')
  t.equal(encodingClass('gzip;q=1.0, br;q=0'), 'gzip')
  t.equal(encodingClass(undefined), 'identity')
  t.equal(encodingClass('identity'), 'identity')
})
