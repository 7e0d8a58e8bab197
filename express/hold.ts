// Holds an Express response until async work decides what goes out: the handler's writes are
// buffered, and when it ends, `onEnd` gets the body and returns the one to send. Express has no
// hook between "the handler answered" and "the bytes leave" (Fastify's onSend): this is it.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'

export interface HoldHooks {
  /** Called at the handler's first `write()`: true keeps holding (buffers the stream), false lets it stream from here on. @default keep holding */
  onStream?: () => boolean
  /** The handler ended with this body: resolve the body to send (headers and status may be changed on `res`). */
  onEnd: (body: Buffer) => Promise<Buffer>
  /** `onEnd` failed; nothing was sent, and the response is as the handler left it. */
  onError: (err: unknown) => void
}

type Callback = (err?: Error | null) => void

/** Intercepts `res.writeHead`, `res.write` and `res.end` until the handler ends; see {@link HoldHooks}. */
export function holdResponse (res: ServerResponse, hooks: HoldHooks): void {
  const { write, end, writeHead } = res
  const chunks: Buffer[] = []
  let holding = true
  let started = false
  const release = (): void => {
    holding = false
    res.write = write
    res.end = end
    res.writeHead = writeHead
  }
  res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    if (!holding) return (writeHead as (...a: unknown[]) => ServerResponse).call(this, status, ...rest)
    // Recorded now, sent with the body: headers stay changeable until then.
    res.statusCode = status
    if (typeof rest[0] === 'string') res.statusMessage = rest[0]
    const headers = rest.find((r): r is OutgoingHttpHeaders => typeof r === 'object' && r !== null && !Array.isArray(r))
    if (headers !== undefined) for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value)
    return res
  } as typeof res.writeHead
  res.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (holding && !started) {
      started = true
      if (hooks.onStream !== undefined && !hooks.onStream()) release()
    }
    if (!holding) return (write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb)
    chunks.push(toBuffer(chunk, encoding))
    const done = typeof encoding === 'function' ? encoding : cb
    if (typeof done === 'function') process.nextTick(done as Callback)
    return true
  } as typeof res.write
  res.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown) {
    if (!holding) return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, cb)
    holding = false
    if (typeof chunk === 'function') cb = chunk
    else if (chunk !== undefined && chunk !== null) chunks.push(toBuffer(chunk, encoding))
    if (typeof encoding === 'function') cb = encoding
    hooks.onEnd(Buffer.concat(chunks)).then((body) => {
      release()
      // A HEAD response has no body but keeps the length of the GET's.
      if (res.req.method !== 'HEAD') res.setHeader('content-length', body.length);
      (end as (...a: unknown[]) => ServerResponse).call(res, body, cb)
    }, (err: unknown) => {
      release()
      hooks.onError(err)
    })
    return res
  } as typeof res.end
}

function toBuffer (chunk: unknown, encoding: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk
  if (chunk instanceof Uint8Array) return Buffer.from(chunk)
  return Buffer.from(String(chunk), typeof encoding === 'string' ? encoding as BufferEncoding : 'utf8')
}
