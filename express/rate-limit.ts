// The rate limiter as Express middleware: `RateLimitGuard` decides, this file applies its
// verdicts to `res`. Counters are per route (`METHOD /path` of the Express route, as on Fastify),
// so one middleware may sit on several routes.
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { LimitedRequest, RateLimitGuard, RouteGuard, RouteRateLimit } from '../lib/rate-limit/index.js'

/** An Express request as the limiter reads it (Express types `ip` as possibly undefined: a closed socket). */
export type LimitedExpressRequest = Request & LimitedRequest

/** Routes remembered per middleware; past this, the rest share one counter. */
const MAX_ROUTES = 10_000

export function rateLimitMiddleware (guard: RateLimitGuard<LimitedExpressRequest, Response>, config: RouteRateLimit<LimitedExpressRequest> | undefined): RequestHandler {
  const at = 'rateLimit()'
  // Checked now, so that a bad config stops startup rather than the first request.
  if (guard.forRoute(config, 'GET', '/', at) === null) return (_req, _res, next) => { next() }
  const routes = new Map<string, RouteGuard<LimitedExpressRequest>>()
  const routeGuard = (req: Request): RouteGuard<LimitedExpressRequest> => {
    // Inside a route: its method and pattern; as app-level middleware: one counter.
    let [method, url] = req.route === undefined ? ['*', 'USE'] : [req.method, req.baseUrl + String((req.route as { path: unknown }).path)]
    if (!routes.has(`${method} ${url}`) && routes.size >= MAX_ROUTES) [method, url] = ['*', 'USE']
    const id = `${method} ${url}`
    let found = routes.get(id)
    if (found === undefined) {
      found = guard.forRoute(config, method, url, at) as RouteGuard<LimitedExpressRequest>
      routes.set(id, found)
    }
    return found
  }
  const { onExceeded } = guard.options
  return (req: Request, res: Response, next: NextFunction) => {
    const route = routeGuard(req)
    route.check(req as LimitedExpressRequest).then(async (verdict) => {
      if (verdict.action === 'pass') {
        if (verdict.headers !== undefined) res.set(verdict.headers)
        const settle = verdict.settle
        if (settle !== undefined) res.once('close', () => settle(res.statusCode))
        return next()
      }
      res.set(verdict.headers)
      if (verdict.status === 429 && onExceeded !== undefined) {
        await onExceeded(req as LimitedExpressRequest, res, verdict.result)
        if (res.headersSent) return
      }
      res.status(verdict.status).end(JSON.stringify(verdict.body))
    }).catch(next)
  }
}
