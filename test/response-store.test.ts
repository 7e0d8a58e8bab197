// lib/response-store.ts: the refresh lock of stale-while-revalidate, against real Redis.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { ResponseStore } from '../lib/response-cache/store.js'
import type { ResponseEntry } from '../lib/response-cache/http.js'
import { cacheApp } from './fixtures/cache.js'

const entry = (body: string): ResponseEntry => ({ status: 200, headers: {}, body: Buffer.from(body), etag: `"${body}"`, storedAt: Date.now(), tags: [] })

t.test('lockToRefresh: a lock for a stale entry, none while held, none once the entry is fresh again', async (t) => {
  const { app } = await cacheApp(t)
  const store = new ResponseStore(app.cache.namespace('store-test'))
  await store.set('k', '/k', entry('old'), { ttl: 100, grace: 60_000, tags: [] })
  await sleep(150)
  t.equal((await store.get('k')).state, 'stale')
  const release = await store.lockToRefresh('k', 5000)
  t.type(release, 'function', 'the first refresh gets the lock')
  t.equal(await store.lockToRefresh('k', 5000), null, 'a second one does not while it is held')
  // The refresh stores a fresh entry and releases; a reader that saw the stale entry before
  // that, and asks now, must not refresh again.
  await store.set('k', '/k', entry('new'), { ttl: 60_000, grace: 60_000, tags: [] })
  await release?.()
  t.equal(await store.lockToRefresh('k', 5000), null, 'fresh again: no second refresh')
  await store.set('k', '/k', entry('newer'), { ttl: 100, grace: 60_000, tags: [] })
  await sleep(150)
  t.type(await store.lockToRefresh('k', 5000), 'function', 'that check left no lock behind')
})
