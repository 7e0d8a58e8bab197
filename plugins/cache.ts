import type { FastifyPluginAsync, RegisterOptions } from 'fastify'
import fp from 'fastify-plugin'
import { CACHE_OPTION_KEYS, createCache, resolveCacheOptions } from '../lib/cache/index.js'
import type { Cache, CacheOptions } from '../lib/cache/index.js'
import { checkKeys, InvalidOptionError, optionKeys, REGISTER_KEYS } from '../lib/core/index.js'

export interface CachePluginOptions extends CacheOptions {
  /** The named connection of the core plugin to cache on (`connections: { cache: … }`). @default 'default' */
  connection?: string
  /** The decorator name, so that two caches (e.g. on two connections) can live side by side. @default 'cache' */
  decorator?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The cache toolkit (see docs/cache.md). */
    cache: Cache
  }
}

const KEYS = [...CACHE_OPTION_KEYS, ...REGISTER_KEYS, ...optionKeys<Omit<CachePluginOptions, keyof CacheOptions>>({ connection: true, decorator: true })]

const cachePlugin: FastifyPluginAsync<CachePluginOptions> = async (fastify, opts) => {
  checkKeys(opts, KEYS, 'cache')
  const { connection, decorator = 'cache', prefix, logLevel, logSerializers, ...cacheOptions } = opts as CachePluginOptions & RegisterOptions
  if (typeof decorator !== 'string' || !/^[A-Za-z_$][\w$]*$/.test(decorator)) throw new InvalidOptionError('decorator', 'expected an identifier')
  if (connection !== undefined && typeof connection !== 'string') throw new InvalidOptionError('connection', 'expected the name of a connection of the core plugin')
  resolveCacheOptions(cacheOptions) // validate here so that errors name the plugin's options at registration
  const suite = fastify.redisSuite
  const cache = createCache(fastify.redisConnection(connection), {
    ...cacheOptions,
    keyspace: suite.keyspace('cache'),
    commandTimeout: suite.commandTimeout,
    log: fastify.log
  })
  fastify.decorate(decorator, cache)
  suite.addHealthSection(decorator, () => cache.stats())
  // Flushes buffered counters; registered after the core plugin, so this runs before its connections close.
  fastify.addHook('onClose', () => cache.close())
}

export default fp(cachePlugin, {
  name: 'fastify-redis-suite/cache',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
