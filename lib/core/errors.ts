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
/** The third argument says what happened: `was not ready within 5000ms`, `refused the connection (ECONNREFUSED)`. */
export const RedisUnreachableError = createError<[string, string, string, { cause: unknown }?]>(
  'FRS_REDIS_UNREACHABLE', 'Redis connection "%s" at %s %s', 500)
export const RedisVersionError = createError<[string, string, string, string]>(
  'FRS_REDIS_VERSION', 'Redis connection "%s" at %s runs Redis %s; fastify-redis-suite needs Redis >= %s (GETDEL)', 500)
export const InvalidKeyPartError = createError<[string]>(
  'FRS_INVALID_KEY_PART', 'Invalid key part: %s', 500, TypeError)

// cache
export const LockTimeoutError = createError<[string, number]>(
  'FRS_LOCK_TIMEOUT', 'Lock "%s" was not acquired within %dms', 503)
export const CounterClosedError = createError<[string]>(
  'FRS_COUNTER_CLOSED', 'Buffered counter "%s" is closed', 500)
export const CacheUndefinedValueError = createError(
  'FRS_CACHE_UNDEFINED', 'undefined cannot be cached: a miss reads as undefined. Store null for "no value"', 500, TypeError)
export const CacheUnserializableError = createError<[string]>(
  'FRS_CACHE_UNSERIALIZABLE', 'The value cannot be cached: it holds %s', 500, TypeError)
export const CacheCorruptValueError = createError<[string, { cause: unknown }?]>(
  'FRS_CACHE_CORRUPT', 'A cached value could not be decoded (%s); it reads as a miss', 500)
export const CacheFactoryTimeoutError = createError<[string, number]>(
  'FRS_CACHE_FACTORY_TIMEOUT', 'The factory for cache key "%s" did not finish within %dms', 504)
export const CacheUnavailableError = createError<[string, { cause: unknown }?]>(
  'FRS_CACHE_UNAVAILABLE', 'Cache operation skipped: %s', 503)

// response cache

// session
export const SessionUnavailableError = createError<[{ cause: unknown }?]>(
  'FRS_SESSION_UNAVAILABLE', 'The session store is unavailable; try again shortly', 503)
/** A write of a session that was destroyed, revoked or expired while the request ran: nothing was written. */
export const SessionEndedError = createError(
  'FRS_SESSION_ENDED', 'The session ended (logged out, revoked or expired) while this request ran; nothing was saved', 401)

// rate limit
export const RateLimitedError = createError<[number]>(
  'FRS_RATE_LIMITED', 'Rate limit exceeded; retry in %d seconds', 429)
export const RateLimitUnavailableError = createError<[{ cause: unknown }?]>(
  'FRS_RATE_LIMIT_UNAVAILABLE', 'The rate limiter cannot reach Redis, and failClosed is set', 503)

// otp
export const OtpUnavailableError = createError<[{ cause: unknown }?]>(
  'FRS_OTP_UNAVAILABLE', 'One-time codes and tokens are unavailable: Redis did not answer. Try again later', 503)
/** `retryAfter` (seconds) and `reason` (`'cooldown'`, `'daily-cap'` or `'locked'`) are set on the instance. */
export const OtpRateLimitedError = createError<[number]>(
  'FRS_OTP_RATE_LIMITED', 'One-time code limit reached for this subject; retry in %d seconds', 429)
/** A per-call input (`subject`, `code`, `token`, `data`, `purpose`, `length`, `ttl`, `maxAttempts`) is malformed: the client's fault. `field` is set on the instance; the value is never quoted. */
export const OtpInvalidInputError = createError<[string, string]>(
  'FRS_OTP_INVALID_INPUT', 'Invalid %s: %s', 400)
