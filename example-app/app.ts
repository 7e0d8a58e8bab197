import type { FastifyPluginAsync } from 'fastify'

/**
 * The example API, as a plugin another server can mount under a prefix. It grows with the
 * suite's plugins; for now it shows the shared connection.
 */
const exampleApp: FastifyPluginAsync = async (app) => {
  app.get('/', async () => ({
    name: 'fastify-redis-suite example',
    redis: await app.redis.ping(),
    routes: ['GET /', 'GET /health/redis']
  }))
}

export default exampleApp
