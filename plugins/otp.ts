import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { Otp, otpRedactPaths, resolveOtpOptions } from '../lib/otp/index.js'
import type { OtpOptions } from '../lib/otp/index.js'

export type OtpPluginOptions = OtpOptions

declare module 'fastify' {
  interface FastifyInstance {
    /** One-time codes (`issue`, `verify`) and one-time link tokens (`createToken`, `consumeToken`, `peekToken`, `revokeAll`). */
    otp: Otp
  }
}

const otpPlugin: FastifyPluginAsync<OtpPluginOptions> = async (fastify, opts) => {
  const options = resolveOtpOptions(opts)
  const client = fastify.redisConnection(options.connection)
  const keys = fastify.redisSuite.keyspace('otp', options.namespace)
  // The module never logs a code or a token; the redaction is a second line of defence.
  const log = fastify.log.child({ plugin: 'otp' }, { redact: { paths: [...otpRedactPaths], censor: '[Redacted]' } })
  fastify.decorate('otp', new Otp(client, keys, options, log))
  // A 429 should say when to come back: Retry-After from the error, whatever error handler runs next.
  fastify.addHook('onError', async (_request, reply, error) => {
    const retryAfter = (error as { retryAfter?: unknown }).retryAfter
    if (error.code === 'FRS_OTP_RATE_LIMITED' && typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter))
  })
}

export default fp(otpPlugin, {
  name: 'fastify-redis-suite/otp',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
