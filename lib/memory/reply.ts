// The memory engine's replies, in RESP's shapes: bulk strings as bytes, integers, nil, arrays,
// status lines and errors. A command never throws; its error is a value, as on the wire.

/** A status line (`+OK`). */
export class Status {
  constructor (readonly status: string) {}
}

/** An error reply (`-ERR ...`, `-WRONGTYPE ...`). */
export class ReplyFailure {
  constructor (readonly message: string) {}
}

export type Reply = null | number | Buffer | Status | ReplyFailure | Reply[]

export const OK = new Status('OK')

export function failure (message: string): ReplyFailure {
  return new ReplyFailure(message)
}
