// Codes and tokens must never reach a log. The OTP module logs neither; these helpers keep
// the application's own request logs clean too (pino `redact` and a `req` serializer).

/** Query parameters whose values are replaced in logged URLs. */
export const OTP_URL_PARAMS: readonly string[] = Object.freeze(['token', 'code', 'otp'])

/** pino redact paths for fields that carry a code or a token, at the top level and one level down (`body.code`, `req.body.token`, …). */
export const otpRedactPaths: readonly string[] = Object.freeze([
  ...['token', 'otp'].flatMap((f) => [f, `*.${f}`, `*.body.${f}`, `*.query.${f}`]),
  // `code` only where a request carries it: `err.code` (ECONNREFUSED, FRS_…) is what operators need.
  ...['code', 'body.code', 'query.code', 'params.code', '*.body.code', '*.query.code', '*.params.code'],
  // ioredis attaches a failed command's arguments to its errors
  'err.command.args'
])

/** `url` with the values of `params` replaced by `[Redacted]`: `/reset?token=abc` → `/reset?token=[Redacted]`. */
export function redactUrl (url: string, params: readonly string[] = OTP_URL_PARAMS): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const names = new Set(params.map((p) => p.toLowerCase()))
  const query = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=')
    const name = eq === -1 ? pair : pair.slice(0, eq)
    let decoded = name
    try { decoded = decodeURIComponent(name.replace(/\+/g, ' ')) } catch {}
    return names.has(decoded.toLowerCase()) ? `${name}=[Redacted]` : pair
  })
  return url.slice(0, q + 1) + query.join('&')
}

interface LoggedRequest {
  method?: string
  url?: string
  headers?: Record<string, unknown>
  host?: string
  ip?: string
  socket?: { remotePort?: number }
}

/**
 * Logger options to spread into `Fastify({ logger: { ...otpLoggerOptions() } })`: redacts
 * code and token fields, and token and code query parameters in request URLs (magic links).
 * It replaces Fastify's default `req` serializer with the same fields, the URL redacted.
 */
export function otpLoggerOptions (params: readonly string[] = OTP_URL_PARAMS): {
  redact: { paths: string[], censor: string }
  serializers: { req: (req: LoggedRequest) => Record<string, unknown> }
  hooks: { logMethod: (this: unknown, args: unknown[], method: (...args: unknown[]) => void) => void }
} {
  // Messages may quote a URL too (Fastify's "Route GET:/reset?token=… not found").
  const inText = new RegExp(`([?&](?:${params.map(escapeRegExp).join('|')})=)[^&\\s#]*`, 'gi')
  return {
    redact: { paths: [...otpRedactPaths], censor: '[Redacted]' },
    hooks: {
      logMethod (args, method) {
        method.apply(this, args.map((a) => typeof a === 'string' && a.includes('=') ? a.replace(inText, '$1[Redacted]') : a))
      }
    },
    serializers: {
      req: (req) => ({
        method: req.method,
        url: typeof req.url === 'string' ? redactUrl(req.url, params) : req.url,
        version: req.headers?.['accept-version'],
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort
      })
    }
  }
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
