import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { routeOptionPath } from '../lib/core/index.js'
import { createRateLimitGuard, resolveRateLimitOptions } from '../lib/rate-limit/index.js'
import type { RateLimitApi, RateLimitOptions as CoreRateLimitOptions, RouteRateLimit as CoreRouteRateLimit } from '../lib/rate-limit/index.js'

/** Limits of one route (`config: { rateLimit: {...} }`); what is left out comes from the plugin options. */
export type RouteRateLimit = CoreRouteRateLimit<FastifyRequest>
/** The options of the `rateLimit` plugin; see {@link CoreRateLimitOptions} for each one. */
export type RateLimitOptions = CoreRateLimitOptions<FastifyRequest, FastifyReply>

declare module 'fastify' {
  interface FastifyInstance {
    /** Programmatic rate limits on the plugin's Redis connection. */
    rateLimit: RateLimitApi
  }
  interface FastifyContextConfig {
    /** This route's limits, or `false` to exempt it from the plugin's default. */
    rateLimit?: RouteRateLimit | false
  }
}

const rateLimitPlugin: FastifyPluginAsync<RateLimitOptions> = async (fastify, opts) => {
  const options = resolveRateLimitOptions<FastifyRequest, FastifyReply>(opts)
  const guard = createRateLimitGuard<FastifyRequest, FastifyReply>({
    client: fastify.redisConnection(options.connection),
    commandTimeout: fastify.redisSuite.commandTimeout,
    keyspace: fastify.redisSuite.keyspace('rl', options.namespace),
    options,
    log: fastify.log
  })
  fastify.redisSuite.addHealthSection('rateLimit', () => ({ ...guard.stats }))
  fastify.decorate<RateLimitApi>('rateLimit', guard.api)

  // Routes that count by outcome: the check's verdict waits here for the response's status.
  const settling = new WeakMap<FastifyRequest, (statusCode: number) => void>()
  const settle = async (request: FastifyRequest, reply: FastifyReply) => {
    const fn = settling.get(request)
    if (fn !== undefined) { settling.delete(request); fn(reply.statusCode) }
  }

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const routeGuard = guard.forRoute(route.config?.rateLimit, route.method, route.url, routeOptionPath(route.method, route.url, 'config.rateLimit'))
    if (routeGuard === null) return
    const check = async (request: FastifyRequest, reply: FastifyReply) => {
      const verdict = await routeGuard.check(request)
      if (verdict.action === 'pass') {
        if (verdict.headers !== undefined) reply.headers(verdict.headers)
        if (verdict.settle !== undefined) settling.set(request, verdict.settle)
        return
      }
      reply.headers(verdict.headers)
      if (verdict.status === 429 && options.onExceeded !== undefined) {
        await options.onExceeded(request, reply, verdict.result)
        if (reply.sent) return reply
      }
      return reply.code(verdict.status).send(verdict.body)
    }
    const existing = route[options.hook]
    route[options.hook] = existing === undefined ? [check] : [check, ...(Array.isArray(existing) ? existing : [existing])] as typeof existing
    if (routeGuard.settles) {
      const after = route.onResponse
      route.onResponse = after === undefined ? [settle] : [...(Array.isArray(after) ? after : [after]), settle] as typeof after
    }
  })
}

export type { RateLimitApi }

export default fp(rateLimitPlugin, {
  name: 'fastify-redis-suite/rate-limit',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
