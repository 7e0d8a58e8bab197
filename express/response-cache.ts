// The response cache as Express middleware: `ResponseCacheEngine` decides, this file only
// applies its answers to `req`/`res` (see hold.ts for how the handler's response is held).
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { TLSSocket } from 'node:tls'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { InvalidOptionError } from '../lib/core/index.js'
import { checkRouteInvalidation, resolveRouteCache } from '../lib/response-cache/index.js'
import type { EngineRequest, ResolvedResponseCacheOptions, ResponseCacheEngine, RouteCacheConfig, RouteInvalidation } from '../lib/response-cache/index.js'
import { holdResponse } from './hold.js'

/**
 * The request as the engine and the route's functions see it: the Express request, with `url`
 * the full one (`originalUrl`) inside routers too.
 */
function engineRequest (req: Request): EngineRequest {
  return req.url === req.originalUrl ? req : Object.create(req, { url: { value: req.originalUrl } }) as Request
}

/** Middleware that caches the GET (and HEAD) responses of the routes it is on; other methods pass. */
export function cacheMiddleware (engine: ResponseCacheEngine, options: ResolvedResponseCacheOptions, config: RouteCacheConfig | true | undefined): RequestHandler {
  const route = resolveRouteCache(config ?? true, options, 'responseCache()')
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next()
    const request = engineRequest(req)
    engine.begin(request, route).then((begin) => {
      if (begin.headers !== undefined) res.set(begin.headers)
      if (begin.action === 'serve') {
        res.status(begin.status)
        res.end(begin.body)
        return
      }
      const ticket = begin.ticket
      if (ticket === undefined) return next()
      res.once('close', () => engine.settle(ticket, null))
      holdResponse(res, {
        // A streamed body is cached only with `bufferStreams`, as on Fastify.
        onStream: () => {
          if (route.bufferStreams) return true
          engine.settle(ticket, null)
          res.setHeader('x-cache', 'BYPASS')
          return false
        },
        onEnd: async (body) => {
          const captured = await engine.capture(ticket, request, { status: res.statusCode, headers: res.getHeaders(), payload: body })
          if (captured.status !== undefined) {
            // A stale entry replaces the handler's error response: none of its headers describe it.
            for (const name of res.getHeaderNames()) res.removeHeader(name)
            res.status(captured.status)
          }
          res.set(captured.headers)
          return Buffer.isBuffer(captured.payload) ? captured.payload : Buffer.from(String(captured.payload ?? ''))
        },
        onError: next
      })
      next()
    }, next)
  }
}

/** Middleware for a mutating route: after a 2xx answer, and before it is sent, the tags are invalidated. */
export function invalidatesMiddleware (engine: ResponseCacheEngine, invalidation: RouteInvalidation): RequestHandler {
  const inv = checkRouteInvalidation(invalidation, 'invalidates()')
  return (req: Request, res: Response, next: NextFunction) => {
    holdResponse(res, {
      onEnd: async (body) => {
        await engine.afterMutation(inv, req, res, res.statusCode)
        return body
      },
      onError: next
    })
    next()
  }
}

/**
 * The stale-while-revalidate refresh: a GET to this very process, on the address and port the
 * stale request came in on (the engine marks it with a secret of this process).
 */
export function replayOverHttp (url: string, headers: Record<string, string>, request: EngineRequest): Promise<void> {
  const socket = (request as Request).socket as TLSSocket | undefined
  if (socket?.localAddress === undefined || socket.localPort === undefined) return Promise.reject(new InvalidOptionError('responseCache', 'a stale entry was found on a request without a socket; it cannot be refreshed'))
  const send = socket.encrypted === true ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send({
      host: socket.localAddress,
      port: socket.localPort,
      path: url,
      method: 'GET',
      headers: { ...headers, host: (request as Request).headers.host ?? 'localhost' },
      // Only to ourselves, on the address the request came in on.
      rejectUnauthorized: false
    }, (res) => {
      res.resume()
      res.once('end', resolve)
      res.once('error', reject)
    })
    req.once('error', reject)
    req.end()
  })
}
