import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { Otp } from '../lib/otp.js'
import { otpRedactPaths } from '../lib/otp-logging.js'
import { resolveOtpOptions } from '../lib/otp-options.js'
import type { OtpOptions } from '../lib/otp-options.js'

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
}

export default fp(otpPlugin, {
  name: 'fastify-redis-suite/otp',
  fastify: '5.x',
  dependencies: ['fastify-redis-suite/redis']
})
