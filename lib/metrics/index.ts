// Prometheus metrics of the suite, counted from its diagnostics channels; prom-client is an
// optional peer dependency, loaded only when metrics are asked for.
export { createSuiteMetrics, loadPromClient } from './collector.js'
export type { MetricsScope, SuiteMetrics } from './collector.js'
export { DEFAULT_LATENCY_BUCKETS, METRICS_OPTION_KEYS, resolveMetricsOptions } from './options.js'
export type { MetricsOptions, MetricsRegistry, ResolvedMetricsOptions } from './options.js'
