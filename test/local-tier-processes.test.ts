// The local tier across three app processes on one Redis (cache({ local }) and
// responseCache({ local })), over real HTTP. A writer changes the toolkit value or invalidates
// the cached page on a random instance; while 30 readers hammer every instance, no GET that
// started after an instance heard of a change is answered with an older version, by that
// instance, from memory or from Redis. The delay until each instance heard is measured.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startAppProcess } from './fixtures/app-process.js'
import { fuzzSeed, prng } from './fixtures/prng.js'
import { freshPrefix, needsRedis } from './fixtures/redis.js'

interface Heard { heard: number, live: boolean, localHits: number }
const json = async <T>(res: Promise<Response>): Promise<T> => await (await res).json() as T
const heardOf = (base: string): Promise<Heard> => json<Heard>(fetch(base + '/heard'))

t.test('three processes: once an instance heard of a change, none of its answers is older', { skip: needsRedis('three app processes share one Redis') }, async (t) => {
  const prefix = freshPrefix()
  const bases = await Promise.all([0, 1, 2].map(async () => (await startAppProcess(t, 'local-cache-app.ts', { PREFIX: prefix })).ready.base))
  const deadline = Date.now() + 5000
  while (!(await Promise.all(bases.map(heardOf))).every((h) => h.live)) {
    if (Date.now() > deadline) throw new Error('the local tiers did not subscribe')
    await sleep(20)
  }
  const seed = fuzzSeed()
  const random = prng(seed)
  t.comment(`FUZZ_SEED=${seed}`)
  // What each instance had heard when it knew of each version: version -> heard count, per instance.
  const known = bases.map(() => [] as Array<{ heard: number, page: number, value: number }>)
  let page = 0
  let value = 0
  await fetch(bases[0] + '/value', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"v":0}' })
  const late: string[] = []
  const state = { running: true }
  let reads = 0
  const readers = Array.from({ length: 30 }, async (_, r) => {
    while (state.running) {
      const i = r % bases.length
      const base = bases[i] as string
      const { heard } = await heardOf(base)
      // The newest versions this instance had heard of before this read began.
      const floor = known[i]?.filter((k) => k.heard <= heard).at(-1)
      const [p, v] = await Promise.all([json<{ v: number }>(fetch(base + '/page')), json<{ v: number | null }>(fetch(base + '/value-object'))])
      reads++
      if (floor !== undefined && p.v < floor.page) late.push(`instance ${i}: page ${p.v} after hearing of ${floor.page}`)
      if (floor !== undefined && (v.v ?? -1) < floor.value) late.push(`instance ${i}: value ${String(v.v)} after hearing of ${floor.value}`)
    }
  })
  const delays: number[] = []
  for (let n = 0; n < 40; n++) {
    const w = Math.floor(random() * bases.length)
    const before = await Promise.all(bases.map(heardOf))
    if (random() < 0.5) {
      page = (await json<{ v: number }>(fetch(bases[w] + '/page', { method: 'POST' }))).v
    } else {
      value++
      await fetch(bases[w] + '/value', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v: value }) })
    }
    const answered = performance.now()
    // Every other instance hears of the change; the writer knew at once (its own write).
    await Promise.all(bases.map(async (base, i) => {
      const was = (before[i] as Heard).heard
      if (i === w) {
        known[i]?.push({ heard: was, page, value })
        return
      }
      let now = was
      while (now === was) now = (await heardOf(base)).heard
      delays.push(performance.now() - answered)
      known[i]?.push({ heard: now, page, value })
    }))
    await sleep(random() * 20)
  }
  state.running = false
  await Promise.all(readers)
  t.same(late.slice(0, 5), [], `${reads} reads over ${bases.length} instances: none older than what its instance had heard of (seed ${seed})`)
  const hits = (await Promise.all(bases.map(heardOf))).map((h) => h.localHits)
  t.ok(hits.every((h) => h > 0), `every instance answered from memory (${hits.join(', ')} local hits)`)
  for (const base of bases) {
    t.same(await json(fetch(base + '/page')), { v: page }, 'the last page everywhere')
    t.same(await json(fetch(base + '/value-object')), { v: value }, 'the last value everywhere')
  }
  delays.sort((a, b) => a - b)
  t.comment(`heard by the other instances after the writing request answered (polled over HTTP): median ${delays[Math.floor(delays.length / 2)]?.toFixed(1)} ms, max ${delays.at(-1)?.toFixed(1)} ms over ${delays.length}`)
})
