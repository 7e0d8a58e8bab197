import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Cluster, Redis } from 'ioredis'
import { AlreadyRegisteredError, openPool, resolvePoolOptions } from '../lib/core/index.js'
import type { HealthReport, PoolCore, PoolOptions } from '../lib/core/index.js'

/** The options of the `redis` plugin: where to connect, named connections, timeouts. */
export type RedisPluginOptions = PoolOptions
/** What feature plugins share: settings and the way to reach a connection. */
export type RedisSuiteCore = PoolCore

declare module 'fastify' {
  interface FastifyInstance {
    /** The default Redis connection: an ioredis `Redis` or `Cluster`. */
    redis: Redis | Cluster
    /** A connection by name; no name (or `'default'`) gives `fastify.redis`. Throws FRS_UNKNOWN_CONNECTION for an unknown name. */
    redisConnection: (name?: string) => Redis | Cluster
    /** Pings every connection and reports latency, version, role, memory and key counts. */
    redisHealth: () => Promise<HealthReport>
    /** Shared settings of the suite for feature plugins. */
    redisSuite: RedisSuiteCore
  }
}

const redisPlugin: FastifyPluginAsync<RedisPluginOptions> = async (fastify, opts) => {
  if (fastify.hasDecorator('redis') || fastify.hasDecorator('redisConnection')) throw new AlreadyRegisteredError()
  const options = resolvePoolOptions(opts, fastify.initialConfig.pluginTimeout ?? 10_000)
  const pool = await openPool(options, fastify.log)

  fastify.decorate<Redis | Cluster>('redis', pool.connection())
  fastify.decorate('redisConnection', pool.connection)
  fastify.decorate('redisHealth', pool.health)
  fastify.decorate('redisSuite', pool.core)

  if (options.healthRoute !== false) {
    fastify.get(options.healthRoute, async (_request, reply) => {
      const report = await pool.health()
      return reply.code(report.ok ? 200 : 503).send(report)
    })
  }

  fastify.addHook('onClose', () => pool.close())
}

export default fp(redisPlugin, { name: 'fastify-redis-suite/redis', fastify: '5.x' })
