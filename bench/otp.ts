// fastify.otp against the seeds' naive way (code in clear, === compare, no limits) and bare
// Fastify: the price of HMAC storage, attempt counting, send limits and revocation checks.
import { fileURLToPath } from 'node:url'
import { benchRedis, load, report, startServer } from './harness.js'
import type { LoadResult, Report } from './harness.js'

export async function run (): Promise<Report> {
  const redis = await benchRedis()
  const rows: LoadResult[] = []
  try {
    const bare = await startServer('bare')
    rows.push(await load({ name: 'bare fastify', url: bare.url }))
    await bare.stop()
    for (const impl of ['naive', 'suite']) {
      const server = await startServer('otp', { REDIS_URL: redis.url, OTP_IMPL: impl })
      rows.push(await load({ name: `${impl} issue+verify`, url: server.url + '/code', method: 'POST' }))
      rows.push(await load({ name: `${impl} create+consume token`, url: server.url + '/token', method: 'POST' }))
      await server.stop()
    }
  } finally {
    await redis.stop()
  }
  return report('otp', 'One-time codes and tokens: one full cycle per request', 'bare fastify', rows)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run()
