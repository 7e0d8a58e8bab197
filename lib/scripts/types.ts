/** One Lua script, registered on every client through ioredis `defineCommand`. */
export interface ScriptDefinition {
  /** The command name on the client; `frs` first, so it never meets a user's own command. */
  name: string
  /** How many of the arguments are keys (they come first); omitted for a variable number, which the caller then passes first. */
  numberOfKeys?: number
  /** The script; it opens with comments naming its KEYS, ARGV and reply. */
  lua: string
  /** True when the script only reads (lets ioredis send it to replicas). @default false */
  readOnly?: boolean
}
