// No sequence of cache operations makes an invalidated value visible again. A seeded random
// sequence of operations (set, add, getOrSet, tags, namespace invalidation, delete,
// deletePattern, expire, touch, persist, and a getOrSet that overlaps a write) runs over two
// app processes, one operation at a time, against a model that knows which values a read may
// return. maxTtl is short, so invalidation records expire during the run.
// FUZZ_SEED=<n> replays a run; FUZZ_OPS sets its length.
import t from 'tap'
import { needsRedis } from '../fixtures/redis.js'
import { cacheProcs } from '../fixtures/cache-procs.js'
import type { CacheProc } from '../fixtures/cache-procs.js'
import { fuzzSeed, prng } from '../fixtures/prng.js'

const seed = fuzzSeed()
const OPS = Number(process.env.FUZZ_OPS ?? 400)
const MAX_TTL = 1500

const NAMESPACES: string[][] = [[], ['a'], ['a', 'b'], ['c']]
const KEYS = ['k0', 'k1', `q:${'x'.repeat(140)}`]
const TAGS = ['draft', 't1']
// Globs that a user might try, some of which once reached the cache's own records.
const GLOBS = ['*', 'k*', '*1', 'q:*', '*draft', '*gen*', '*lock*', '*t1*']

/** What the model knows of one key: the values a read may return, each with its tags. */
type Slot = Map<string, readonly string[]>

class Model {
  readonly slots = new Map<string, Slot>()

  static id (ns: readonly string[], key: string): string { return ns.join('/') + '|' + key }

  slot (ns: readonly string[], key: string): Slot {
    const id = Model.id(ns, key)
    let s = this.slots.get(id)
    if (s === undefined) this.slots.set(id, (s = new Map()))
    return s
  }

  /** After a write that resolved: only `value` may be read (or a miss). */
  only (ns: readonly string[], key: string, value: string, tags: readonly string[]): void {
    const s = this.slot(ns, key)
    s.clear()
    s.set(value, tags)
  }

  clear (match: (ns: string, key: string) => boolean): void {
    for (const [id, s] of this.slots) {
      const [ns, key] = id.split('|') as [string, string]
      if (match(ns, key)) s.clear()
    }
  }

  dropTag (tag: string): void {
    for (const s of this.slots.values()) for (const [v, tags] of s) if (tags.includes(tag)) s.delete(v)
  }

  may (ns: readonly string[], key: string, value: unknown): boolean {
    return value === undefined || (typeof value === 'string' && this.slot(ns, key).has(value))
  }
}

function globMatches (glob: string, key: string): boolean {
  const re = new RegExp('^' + glob.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')
  return re.test(key)
}

t.test(`a random sequence of ${OPS} operations over two processes never reads an invalidated value`, { skip: needsRedis('two app processes share one Redis') }, async (t) => {
  t.comment(`FUZZ_SEED=${seed} replays this run`)
  const { procs } = await cacheProcs(t, 2, { ttl: 1000, maxTtl: MAX_TTL, factoryTimeout: '2s' })
  const rand = prng(seed)
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T
  const model = new Model()
  const log: string[] = []
  let n = 0
  const fresh = (): string => `v${n++}`
  const someTags = (): string[] => TAGS.filter(() => rand() < 0.4)
  const lifetime = (): { ttl: number, grace: number } => {
    const grace = rand() < 0.2 ? 200 : 0
    return { ttl: 200 + Math.floor(rand() * (MAX_TTL - 200 - grace)), grace }
  }
  let violation: string | undefined
  const check = (ns: readonly string[], key: string, value: unknown, what: string): void => {
    if (violation === undefined && !model.may(ns, key, value)) {
      violation = `${what} read ${String(value)} from ${Model.id(ns, key)}, which may hold only [${[...model.slot(ns, key).keys()].join(', ')}]`
    }
  }
  const started = Date.now()
  for (let i = 0; i < OPS && violation === undefined; i++) {
    const p: CacheProc = pick(procs)
    const pid = procs.indexOf(p)
    const ns = pick(NAMESPACES)
    const key = pick(KEYS)
    const r = rand()
    const short = key.length > 10 ? 'q…' : key
    const step = (text: string): void => { log.push(`${i} p${pid} ${ns.join('/') || '(root)'} ${text}`) }
    if (r < 0.12) {
      const value = fresh()
      const tags = someTags()
      step(`set ${short} ${value} [${tags.join(',')}]`)
      const ok = await p.call<boolean>('set', { ns, key, value, opts: { ...lifetime(), tags } })
      if (ok) model.only(ns, key, value, tags)
      else model.slot(ns, key).set(value, tags)
    } else if (r < 0.15) {
      const value = fresh()
      const tags = someTags()
      step(`add ${short} ${value}`)
      if (await p.call<boolean>('add', { ns, key, value, opts: { ...lifetime(), tags } })) model.only(ns, key, value, tags)
    } else if (r < 0.30) {
      const value = fresh()
      const tags = someTags()
      const skip = rand() < 0.15
      step(`getOrSet ${short} ${value}${skip ? ' skip' : ''} [${tags.join(',')}]`)
      const res = await p.call<{ value: unknown, state: string }>('getOrSet', { ns, key, factory: { value, skip }, opts: { ...lifetime(), tags } })
      if (res.state === 'miss') {
        if (res.value !== value) violation = `getOrSet said miss but returned ${String(res.value)}`
        if (skip) model.clear((a, b) => a === ns.join('/') && b === key)
        else model.only(ns, key, value, tags)
      } else {
        check(ns, key, res.value, `getOrSet (${res.state})`)
        if (res.state === 'stale' && !skip) model.slot(ns, key).set(value, tags) // the refresh behind it
      }
    } else if (r < 0.44) {
      step(`get ${short}`)
      check(ns, key, (await p.call<{ value: unknown }>('get', { ns, key })).value, 'get')
    } else if (r < 0.50) {
      step('getMany')
      const { values } = await p.call<{ values: unknown[] }>('getMany', { ns, keys: KEYS })
      KEYS.forEach((k, j) => check(ns, k, values[j], 'getMany'))
    } else if (r < 0.56) {
      const tag = pick(TAGS)
      step(`invalidateTags ${tag}`)
      await p.call('invalidateTags', { tags: [tag] })
      model.dropTag(tag)
    } else if (r < 0.61) {
      step('invalidateAll')
      await p.call('invalidateAll', { ns })
      const name = ns.join('/')
      model.clear((a) => name === '' || a === name || a.startsWith(name + '/'))
    } else if (r < 0.64) {
      step(`delete ${short}`)
      await p.call('delete', { ns, key })
      model.clear((a, b) => a === ns.join('/') && b === key)
    } else if (r < 0.71) {
      const glob = pick(GLOBS)
      step(`deletePattern ${glob}`)
      await p.call('deletePattern', { ns, glob })
      model.clear((a, b) => a === ns.join('/') && globMatches(glob, b))
    } else if (r < 0.85) {
      const op = pick(['expire', 'touch', 'persist', 'touch'] as const)
      const ms = op === 'persist' || (op === 'touch' && rand() < 0.5) ? undefined : 100 + Math.floor(rand() * 5000)
      step(`${op} ${short} ${ms ?? ''}`)
      await p.call(op, { ns, key, ms })
    } else if (r < 0.95) {
      // A getOrSet still running when this process writes; the getOrSet after the write.
      const before = fresh()
      const after = fresh()
      const tags = someTags()
      const write = pick([
        { op: 'invalidateTags', tags: [pick(TAGS)] },
        { op: 'invalidateAll' },
        { op: 'delete', key },
        { op: 'set', key, value: fresh(), opts: { tags: someTags() } }
      ])
      step(`overlap ${short} ${before} / ${write.op} ${JSON.stringify(write.op === 'set' ? write.value : (write.tags ?? ''))} / ${after}`)
      const res = await p.call<{ first: unknown, firstState: string, second: unknown, state: string }>('overlap', { ns, key, before, after, delay: 60, write: { ...write, ns }, opts: { tags } })
      // A first call that found the entry stale answered it and refreshed it behind, with the
      // factory's value, read before the write: the write's rules apply to it as to a miss's.
      const refreshed = res.first !== before && res.firstState === 'stale'
      if (res.first !== before) check(ns, key, res.first, 'overlap (first call)')
      else model.only(ns, key, before, tags) // it stored its value, to be invalidated by the write
      if (refreshed) model.slot(ns, key).set(before, tags)
      if (write.op === 'invalidateTags') model.dropTag(write.tags?.[0] as string)
      else if (write.op === 'invalidateAll') model.clear((a) => ns.length === 0 || a === ns.join('/') || a.startsWith(ns.join('/') + '/'))
      else if (write.op === 'delete') {
        // A delete leaves no record: the running call's value, read before it, may land after it.
        model.clear((a, b) => a === ns.join('/') && b === key)
        if (res.first === before || refreshed) model.slot(ns, key).set(before, tags)
      } else model.only(ns, key, write.value as string, write.opts?.tags ?? [])
      if (res.state === 'miss') {
        if (res.second !== after) violation = `overlap: the second call said miss but returned ${String(res.second)}`
        model.only(ns, key, after, tags)
      } else {
        check(ns, key, res.second, `overlap (second call, ${res.state})`)
      }
    } else {
      // Time passes: entries and invalidation records expire (maxTtl is 1.5 s).
      const ms = 100 + Math.floor(rand() * 500)
      step(`pause ${ms}`)
      await new Promise((resolve) => setTimeout(resolve, ms))
    }
  }
  if (violation !== undefined) {
    t.fail(`${violation}\nreplay with FUZZ_SEED=${seed}\nlast operations:\n${log.slice(-25).join('\n')}`)
  } else {
    t.pass(`${OPS} operations, ${n} values, ${Math.round((Date.now() - started) / 1000)} s: no read returned a value it may not`)
  }
})
