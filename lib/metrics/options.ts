// The metrics feature's options, checked at startup: unknown keys and bad values stop it,
// naming the option.
import { checkKeys, InvalidOptionError, optionKeys } from '../core/index.js'

/**
 * What the metrics need of a prom-client `Registry` (yours, `promClient.register`, or one
 * the suite makes). Written out here so that apps without prom-client compile against the
 * suite's types.
 */
export interface MetricsRegistry {
  /** The registry's text exposition. */
  metrics: () => Promise<string>
  /** The Content-Type of that text. */
  readonly contentType: string
  getSingleMetric: (name: string) => unknown
  removeSingleMetric: (name: string) => void
  registerMetric: (metric: never) => void
}

export interface MetricsOptions {
  /**
   * The prom-client `Registry` the metrics are registered on. Pass `promClient.register` (the
   * global one) to serve them with your other metrics. Without it each app gets a registry of
   * its own, so that two apps (or two tests) in one process never collide.
   * @default a new prom-client `Registry`
   */
  registry?: MetricsRegistry
  /** Prepended to every metric name (letters, digits and `_`). @default 'frs_' */
  prefix?: string
  /**
   * Upper bounds, in seconds, of the buckets of `frs_redis_command_duration_seconds`. The
   * default spans a loopback round trip (0.1 ms) to a command timeout (1 s).
   * @default [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
   */
  latencyBuckets?: readonly number[]
}

export interface ResolvedMetricsOptions {
  registry: MetricsRegistry | undefined
  prefix: string
  latencyBuckets: readonly number[]
}

export const METRICS_OPTION_KEYS = optionKeys<MetricsOptions>({ registry: true, prefix: true, latencyBuckets: true })

export const DEFAULT_LATENCY_BUCKETS: readonly number[] = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])

/** Checks the options (`known` adds a door's own keys, `path` names them in errors) and fills defaults. */
export function resolveMetricsOptions (opts: MetricsOptions, path = 'metrics', known: readonly string[] = []): ResolvedMetricsOptions {
  checkKeys(opts, [...METRICS_OPTION_KEYS, ...known], path)
  const at = (key: string) => `${path}.${key}`
  const { registry, prefix = 'frs_', latencyBuckets = DEFAULT_LATENCY_BUCKETS } = opts
  if (registry !== undefined && (registry === null || typeof registry !== 'object' || typeof registry.metrics !== 'function' || typeof registry.registerMetric !== 'function')) {
    throw new InvalidOptionError(at('registry'), 'expected a prom-client Registry')
  }
  if (typeof prefix !== 'string' || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(prefix)) throw new InvalidOptionError(at('prefix'), 'expected letters, digits and "_", not starting with a digit')
  if (!Array.isArray(latencyBuckets) || latencyBuckets.length === 0 || !latencyBuckets.every((b, i) => typeof b === 'number' && Number.isFinite(b) && b > 0 && (i === 0 || b > (latencyBuckets[i - 1] as number)))) {
    throw new InvalidOptionError(at('latencyBuckets'), 'expected increasing positive numbers of seconds')
  }
  return Object.freeze({ registry, prefix, latencyBuckets: Object.freeze([...latencyBuckets]) })
}
