// Sessions: the Redis store, its records, the per-user index, the local cache and the signer.
export { CachingSigner } from './signer.js'
export { GONE, RedisSessionStore, RequestSessionStore } from './store.js'
export type { SessionStoreOptions } from './options.js'
export type { UserSession } from './users.js'
export { resolveSessionOptions } from './config.js'
export type { LocalCacheOption, ResolvedSessionOptions, SessionCookieOptions, SessionPluginOptions } from './config.js'
export { createSessionStore, sessionHealth } from './setup.js'
export type { CreateSessionStoreOptions } from './setup.js'
