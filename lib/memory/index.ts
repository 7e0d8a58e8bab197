// The memory engine: `memory://` connections, for development and tests without a Redis
// server. One process only; the README's "Without Redis" section says what that means.
export { MemoryPipeline, MemoryRedis } from './client.js'
export type { MemoryClientOptions } from './client.js'
export { globToRegExp, MEMORY_COMMANDS, MEMORY_ENGINE_VERSION } from './server.js'
