import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { InvalidOptionError, routeOptionPath } from '../lib/core/index.js'
import { checkRouteInvalidation, resolveResponseCacheOptions, resolveRouteCache, ResponseCacheEngine, ResponseStore } from '../lib/response-cache/index.js'
import type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation, Ticket } from '../lib/response-cache/index.js'

export type { ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from '../lib/response-cache/index.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this GET route's responses (`true` for the plugin's defaults), or `false`. */
    cache?: RouteCacheConfig | boolean
    /** Tags to invalidate after a 2xx response of this (mutating) route. */
    invalidates?: RouteInvalidation
  }
  interface FastifyInstance {
    responseCache: {
      /** Makes every cached variant (queries, vary values, users) of one path miss. */
      invalidateUrl: (path: string) => Promise<void>
      /** Makes every entry with one of the tags miss (same as `fastify.cache.invalidateTags`). */
      invalidateTags: (tags: string[]) => Promise<void>
    }
  }
}

const kTicket = Symbol('fastify-redis-suite.responseCache')
type WithTicket = FastifyRequest & { [kTicket]?: Ticket }

const responseCache: FastifyPluginAsync<ResponseCacheOptions> = async (fastify, opts) => {
  const options = resolveResponseCacheOptions(opts, fastify.redisSuite.credentialCookies, fastify.cache.core.local !== undefined)
  const engine = new ResponseCacheEngine({
    store: new ResponseStore(fastify.cache.namespace('http')),
    replay: (url, headers) => fastify.inject({ method: 'GET', url, headers }),
    log: fastify.log
  })

  fastify.decorate('responseCache', {
    invalidateUrl: (path: string) => engine.invalidateUrl(path),
    invalidateTags: (tags: string[]) => engine.invalidateTags(tags)
  })

  fastify.addHook('onRoute', (route) => {
    const config = route.config as { cache?: RouteCacheConfig | boolean, invalidates?: RouteInvalidation } | undefined
    if (config?.invalidates !== undefined) {
      const inv = checkRouteInvalidation(config.invalidates, routeOptionPath(route.method, route.url, 'config.invalidates'))
      route.onSend = [...[route.onSend ?? []].flat(), async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
        await engine.afterMutation(inv, request, reply, reply.statusCode)
        return payload
      }]
    }
    if (config?.cache === undefined || config.cache === false) return
    const name = routeOptionPath(route.method, route.url, 'config.cache')
    const methods = [route.method].flat()
    if (!methods.every((m) => m === 'GET' || m === 'HEAD')) throw new InvalidOptionError(name, 'only GET routes (and their HEAD) can be cached')
    const resolved = resolveRouteCache(config.cache, options, name)
    route.preHandler = [...[route.preHandler ?? []].flat(), async (request: FastifyRequest, reply: FastifyReply) => {
      const begin = await engine.begin(request, resolved)
      if (begin.headers !== undefined) reply.headers(begin.headers)
      if (begin.action === 'serve') return reply.code(begin.status).send(begin.body)
      if (begin.ticket !== undefined) (request as WithTicket)[kTicket] = begin.ticket
    }]
    // Callback-style hooks: a hit (no ticket) passes through them without a promise.
    route.onSend = [...[route.onSend ?? []].flat(), (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => {
      const ticket = (request as WithTicket)[kTicket]
      if (ticket === undefined) return done(null, payload)
      engine.capture(ticket, request, { status: reply.statusCode, headers: reply.getHeaders(), payload }).then((captured) => {
        if (captured.status !== undefined) {
          // A stale entry replaces the handler's error response: none of its headers describe it.
          for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
          reply.code(captured.status)
        }
        reply.headers(captured.headers)
        done(null, captured.payload)
      }, (err: Error) => done(err))
    }]
    route.onResponse = [...[route.onResponse ?? []].flat(), (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
      try {
        engine.settle((request as WithTicket)[kTicket], null)
      } catch (err) {
        return done(err as Error) // logged by Fastify, as a rejected async hook would be
      }
      done()
    }]
  })
}

export default fp(responseCache, {
  name: 'fastify-redis-suite/response-cache',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis', 'fastify-redis-suite/cache']
})
