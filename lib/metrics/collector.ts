// Prometheus metrics of one suite, counted from the diagnostics channels the features publish
// on (lib/core/events.ts): the features report what they did, and this is one subscriber among
// any others (a tracer). Events of other suites in the process (another key prefix) are left out.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type * as Prom from 'prom-client'
import { channelNames, InvalidOptionError } from '../core/index.js'
import type { CacheErrorEvent, CacheGetOrSetEvent, CacheReadEvent, CircuitEvent, OtpEvent, RateLimitEvent, RedisCallEvent, ResponseCacheEvent, SessionEvent, SuiteEvent } from '../core/index.js'
import type { MetricsRegistry, ResolvedMetricsOptions } from './options.js'

/** The metrics of one suite, registered and counting. */
export interface SuiteMetrics {
  /** The registry that holds them (with whatever else you registered on it). */
  readonly registry: MetricsRegistry
  /** The Content-Type of {@link SuiteMetrics.text}. */
  readonly contentType: string
  /** The registry's text exposition, as `GET /metrics` serves it. */
  text: () => Promise<string>
  /** Stops counting and removes the suite's metrics from the registry. */
  close: () => void
}

/** Which suite to count: its key prefix (`redis.prefix`) and its connections' names. */
export interface MetricsScope {
  prefix: string
  connections: readonly string[]
}

/** Loads prom-client, an optional peer dependency; FRS_INVALID_OPTION naming `path` when it is not installed. */
export async function loadPromClient (path = 'metrics'): Promise<unknown> {
  try {
    return await import('prom-client')
  } catch (err) {
    throw Object.assign(new InvalidOptionError(path, 'needs the prom-client package: npm i prom-client'), { cause: err })
  }
}

const CIRCUIT_STATE = { closed: 0, open: 1, 'half-open': 2 } as const
const VERIFY_RESULT: Record<string, string> = { ok: 'verified', invalid: 'wrong', expired: 'expired', locked: 'locked' }

/**
 * Registers the suite's metrics on the registry and subscribes to the channels. `prom` is the
 * prom-client module ({@link loadPromClient}). Throws FRS_INVALID_OPTION when the registry
 * already holds one of the names (another app on the same registry: give it another `prefix`).
 */
export function createSuiteMetrics (prom: unknown, options: ResolvedMetricsOptions, scope: MetricsScope): SuiteMetrics {
  const p = prom as typeof Prom
  const registry = (options.registry ?? new p.Registry()) as unknown as Prom.Registry
  const names: string[] = []
  const make = <M>(name: string, create: (full: string) => M): M => {
    const full = options.prefix + name
    if (registry.getSingleMetric(full) !== undefined) {
      for (const n of names) registry.removeSingleMetric(n)
      throw new InvalidOptionError('metrics.registry', `already holds a metric named ${full}: give this app another metrics prefix, or a registry of its own`)
    }
    names.push(full)
    return create(full)
  }
  const counter = (name: string, help: string, labelNames: string[]): Inc => {
    const pending = new Map<string, { values: string[], n: number }>()
    make(name, (full) => new p.Counter({
      name: full,
      help,
      labelNames,
      registers: [registry],
      // Counts wait here until a scrape: prom-client hashes the labels on every inc().
      collect (this: Prom.Counter) {
        for (const entry of pending.values()) {
          if (entry.n === 0) continue
          if (entry.values.length === 0) this.inc(entry.n)
          else this.labels(...entry.values).inc(entry.n)
          entry.n = 0
        }
      }
    }))
    return (n, ...values) => {
      const id = values.length === 1 ? values[0] as string : values.join('\u0000')
      const entry = pending.get(id)
      if (entry === undefined) pending.set(id, { values, n })
      else entry.n += n
    }
  }

  const cacheHits = counter('cache_hits_total', 'Cache reads that found a fresh value, by namespace.', ['namespace'])
  const cacheMisses = counter('cache_misses_total', 'Cache reads that found no valid value, by namespace.', ['namespace'])
  const cacheStale = counter('cache_stale_total', 'Cache reads that found a value past its TTL, inside its grace, by namespace.', ['namespace'])
  const cacheBypass = counter('cache_bypass_total', 'getOrSet calls that computed the value without the cache because Redis failed, by namespace.', ['namespace'])
  const cacheErrors = counter('cache_errors_total', 'Cache keys and operations that failed open because Redis failed, by namespace and operation.', ['namespace', 'operation'])
  const circuit = make('cache_circuit_state', (full) => new p.Gauge({ name: full, help: 'State of the cache circuit breaker by connection: 0 closed, 1 open, 2 half-open (probing).', labelNames: ['connection'], registers: [registry] }))
  const responses = counter('response_cache_requests_total', 'Requests of cached routes by route pattern and X-Cache result (HIT, MISS, STALE, BYPASS).', ['route', 'result'])
  const refreshes = counter('response_cache_refreshes_total', 'Stale-while-revalidate refreshes run by this process, by route pattern.', ['route'])
  const limits = counter('rate_limit_requests_total', 'Rate-limit checks by route pattern, policy and outcome (allowed, limited, dry-run, failed-open, failed-closed).', ['route', 'policy', 'outcome'])
  const sessionReads = counter('session_reads_total', 'Session loads, by whether a session was found.', ['found'])
  const sessionLocal = counter('session_local_cache_hits_total', 'Session loads answered by the local cache.', [])
  const sessionWrites = counter('session_writes_total', 'Sessions written to Redis (creations and updates).', [])
  const sessionCreations = counter('session_creations_total', 'Sessions created in Redis.', [])
  const sessionRevocations = counter('session_revocations_total', 'Sessions ended (logout, regenerate, revokeUser).', [])
  const sessionErrors = counter('session_errors_total', 'Session store operations that failed because Redis failed.', [])
  const otpIssued = counter('otp_issued_total', 'One-time codes issued, by purpose.', ['purpose'])
  const otpRefused = counter('otp_issue_refused_total', 'Code requests refused, by purpose and reason (cooldown, daily-cap, locked).', ['purpose', 'reason'])
  const otpVerifications = counter('otp_verifications_total', 'Code checks by purpose and result (verified, wrong, expired, locked).', ['purpose', 'result'])
  const otpErrors = counter('otp_errors_total', 'OTP operations that failed closed because Redis failed, by purpose and operation.', ['purpose', 'operation'])
  const latency = make('redis_command_duration_seconds', (full) => new p.Histogram({ name: full, help: 'Duration of the Redis calls the suite makes for requests (one command or script, which may carry a batch), by connection.', labelNames: ['connection'], buckets: [...options.latencyBuckets], registers: [registry] }))
  const latencyErrors = counter('redis_command_errors_total', 'Redis calls of the suite that failed or timed out, by connection.', ['connection'])
  for (const c of scope.connections) circuit.set({ connection: c }, 0)
  const latencyOf = new Map<string, Prom.Histogram.Internal<string>>()

  const ours = (e: SuiteEvent) => e.prefix === scope.prefix
  const handlers: Array<[string, (message: unknown) => void]> = [
    [channelNames.cacheRead, (m) => {
      const e = m as CacheReadEvent
      if (!ours(e)) return
      if (e.hits > 0) cacheHits(e.hits, e.namespace)
      if (e.misses > 0) cacheMisses(e.misses, e.namespace)
      if (e.stale > 0) cacheStale(e.stale, e.namespace)
      if (e.errors > 0) cacheErrors(e.errors, e.namespace, 'read')
    }],
    [channelNames.cacheGetOrSet, (m) => {
      const e = m as CacheGetOrSetEvent
      if (!ours(e)) return
      // getOrSet counts per caller (callers of one key share one read, which is not published)
      if (e.state === 'hit') cacheHits(1, e.namespace)
      else if (e.state === 'miss') cacheMisses(1, e.namespace)
      else if (e.state === 'stale') cacheStale(1, e.namespace)
      else { cacheBypass(1, e.namespace); cacheErrors(1, e.namespace, 'read') }
    }],
    [channelNames.cacheError, (m) => {
      const e = m as CacheErrorEvent
      if (ours(e)) cacheErrors(1, e.namespace, e.operation)
    }],
    [channelNames.circuit, (m) => {
      const e = m as CircuitEvent
      if (ours(e)) circuit.set({ connection: e.connection }, CIRCUIT_STATE[e.state])
    }],
    [channelNames.responseCache, (m) => {
      const e = m as ResponseCacheEvent
      if (!ours(e)) return
      if (e.refresh) refreshes(1, e.route)
      else responses(1, e.route, e.result)
    }],
    [channelNames.rateLimit, (m) => {
      const e = m as RateLimitEvent
      if (ours(e)) limits(1, e.route, e.policy, e.outcome)
    }],
    [channelNames.session, (m) => {
      const e = m as SessionEvent
      if (!ours(e)) return
      switch (e.operation) {
        case 'read':
          sessionReads(1, e.found === true ? 'true' : 'false')
          if (e.source === 'local') sessionLocal(1)
          break
        case 'create': sessionCreations(1); sessionWrites(1); break
        case 'update': sessionWrites(1); break
        case 'revoke': sessionRevocations(1); break
        case 'error': sessionErrors(1); break
      }
    }],
    [channelNames.otp, (m) => {
      const e = m as OtpEvent
      if (!ours(e)) return
      if (e.result === 'error') otpErrors(1, e.purpose, e.operation)
      else if (e.operation === 'issue') {
        if (e.result === 'issued') otpIssued(1, e.purpose)
        else otpRefused(1, e.purpose, e.result)
      } else otpVerifications(1, e.purpose, VERIFY_RESULT[e.result] ?? e.result)
    }],
    [channelNames.redisCall, (m) => {
      const e = m as RedisCallEvent
      if (!ours(e)) return
      if (!e.ok) return latencyErrors(1, e.connection)
      let h = latencyOf.get(e.connection)
      if (h === undefined) latencyOf.set(e.connection, h = latency.labels(e.connection))
      h.observe(e.durationMs / 1000)
    }]
  ]
  for (const [name, fn] of handlers) subscribe(name, fn)

  return {
    registry: registry as unknown as MetricsRegistry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close: () => {
      for (const [name, fn] of handlers) unsubscribe(name, fn)
      for (const n of names) registry.removeSingleMetric(n)
    }
  }
}

// Adds `n` to a counter's series of these label values: route patterns, namespaces, purposes
// and policy names, a bounded set.
type Inc = (n: number, ...values: string[]) => void
