// Runs the example alone: `npm run example`. Uses REDIS_URL when set; otherwise starts a
// throwaway redis-server; when neither can be had, says how to get one.
import Fastify from 'fastify'
import { redis } from '../plugins/index.js'
import exampleApp from './app.js'
import { redisServerAvailable, startRedisServer } from '../test/fixtures/redis-server.js'

async function redisUrl (): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL
  if (!(await redisServerAvailable())) {
    console.error('The example needs Redis: install redis-server (apt-get install redis-server, brew install redis) or set REDIS_URL=redis://host:6379.')
    process.exit(1)
  }
  const server = await startRedisServer()
  console.log(`started a throwaway redis-server at ${server.url} (it stops with this process)`)
  return server.url
}

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
await app.register(redis, { url: await redisUrl(), healthRoute: true })
await app.register(exampleApp)

const port = Number(process.env.PORT ?? 3000)
await app.listen({ host: '127.0.0.1', port })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
