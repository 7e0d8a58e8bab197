import type { FastifyPluginAsync, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { InvalidOptionError, optionKeys, REGISTER_KEYS } from '../lib/core/index.js'
import { createSuiteMetrics, loadPromClient, resolveMetricsOptions } from '../lib/metrics/index.js'
import type { MetricsOptions, SuiteMetrics } from '../lib/metrics/index.js'

export type { MetricsOptions, MetricsRegistry, SuiteMetrics } from '../lib/metrics/index.js'

/** The options of the `metrics` plugin: where the metrics go, and whether a route serves them. */
export interface MetricsPluginOptions extends MetricsOptions {
  /**
   * Serve the metrics on a GET route: `true` for `/metrics`, or a path. Off, since they tell
   * about your app: protect the route with `onRequest`, or register this plugin inside an
   * encapsulated context that authenticates.
   * @default false
   */
  route?: boolean | string
  /**
   * Hooks that run before the metrics route answers, such as your authentication (reply 401
   * there and the metrics are not sent).
   * @default []
   */
  onRequest?: onRequestHookHandler | onRequestHookHandler[]
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The suite's Prometheus metrics: their registry and its text exposition. */
    suiteMetrics: SuiteMetrics
  }
}

const OWN_KEYS = optionKeys<Omit<MetricsPluginOptions, keyof MetricsOptions>>({ route: true, onRequest: true })

const metricsPlugin: FastifyPluginAsync<MetricsPluginOptions> = async (fastify, opts) => {
  const options = resolveMetricsOptions(opts, 'metrics', [...OWN_KEYS, ...REGISTER_KEYS])
  const { route = false, onRequest = [] } = opts
  if (route !== false && route !== true && (typeof route !== 'string' || !route.startsWith('/'))) {
    throw new InvalidOptionError('metrics.route', 'expected true, false or a path starting with "/"')
  }
  const hooks = [onRequest].flat()
  if (!hooks.every((h) => typeof h === 'function')) throw new InvalidOptionError('metrics.onRequest', 'expected a hook function or an array of them')
  const prom = await loadPromClient('metrics')
  const metrics = createSuiteMetrics(prom, options, { prefix: fastify.redisSuite.prefix, connections: fastify.redisSuite.connectionNames })
  fastify.decorate('suiteMetrics', metrics)
  fastify.addHook('onClose', async () => metrics.close())

  if (route !== false) {
    fastify.get(route === true ? '/metrics' : route, { onRequest: hooks }, async (_request, reply) => {
      const text = await metrics.text()
      return reply.type(metrics.contentType).send(text)
    })
  }
}

export default fp(metricsPlugin, {
  name: 'fastify-redis-suite/metrics',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
