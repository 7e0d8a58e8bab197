// HTTP response caching: the RFC 9110/9111 rules, route options and the response store.
export { encodingClass, entryKey, ifNoneMatchMatches, keptHeaders, normalizeQuery, pathOf, strongEtag, uncacheableReason } from './http.js'
export type { ResponseEntry } from './http.js'
export { checkRouteInvalidation, resolveResponseCacheOptions, resolveRouteCache } from './options.js'
export type { CacheRequest, ResolvedResponseCacheOptions, ResolvedRouteCache, ResponseCacheOptions, RouteCacheConfig, RouteInvalidation } from './options.js'
export { ResponseStore } from './store.js'
export { REFRESH_HEADER, ResponseCacheEngine } from './engine.js'
export type { Begin, EngineRequest, HandlerResponse, HeaderSet, ResponseCacheEngineOptions, Ticket } from './engine.js'
