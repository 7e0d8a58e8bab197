import createError from '@fastify/error'

// Every error the suite throws or sends, with a stable code. The codes are public API.
// Sections are per feature so that each plugin adds its errors in its own place.

// core
export const InvalidOptionError = createError<[string, string]>(
  'FRS_INVALID_OPTION', 'Invalid option "%s": %s', 500)
export const InvalidDurationError = createError<[string, string]>(
  'FRS_INVALID_DURATION', 'Invalid duration for "%s": %s. Use milliseconds (a non-negative integer) or a string such as "500ms", "10s", "10m", "1h", "1d"', 500)
export const InvalidRateError = createError<[string, string]>(
  'FRS_INVALID_RATE', 'Invalid rate for "%s": %s. Use "<count>/<window>", such as "100/hour", "5/15m", "10/s"', 500)
export const AlreadyRegisteredError = createError(
  'FRS_ALREADY_REGISTERED', 'fastify-redis-suite/redis is already registered on this instance: register the core plugin once and use named "connections" for more servers', 500)
export const UnknownConnectionError = createError<[string, string]>(
  'FRS_UNKNOWN_CONNECTION', 'Unknown Redis connection "%s"; the core plugin has: %s', 500)
export const RedisUnreachableError = createError<[string, string, number, { cause: unknown }?]>(
  'FRS_REDIS_UNREACHABLE', 'Redis connection "%s" at %s was not ready within %dms', 500)
export const InvalidKeyPartError = createError<[string]>(
  'FRS_INVALID_KEY_PART', 'Invalid key part: %s', 500, TypeError)

// cache

// response cache

// session

// rate limit
export const RateLimitedError = createError<[number]>(
  'FRS_RATE_LIMITED', 'Rate limit exceeded; retry in %d seconds', 429)
export const RateLimitUnavailableError = createError<[{ cause: unknown }?]>(
  'FRS_RATE_LIMIT_UNAVAILABLE', 'The rate limiter cannot reach Redis, and failClosed is set', 503)

// otp
