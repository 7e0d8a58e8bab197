// The JSON schemas of the example's routes: Fastify validates every body, path and query
// against them before a handler runs, and serializes every reply through them. server.ts
// turns type coercion off, so a body's `"12"` is not a price; path and query values are
// strings on the wire, so their schemas say so (digits by pattern) and the handlers convert.

/** A path id: 1 to 10 digits, no leading zero (so `/listings/01` is not a second URL of listing 1). */
const id = { type: 'string', pattern: '^[1-9][0-9]{0,9}$' } as const
const email = { type: 'string', minLength: 3, maxLength: 254 } as const
const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength }) as const
const count = (maximum: number) => ({ type: 'integer', minimum: 1, maximum }) as const

/** A route that takes no query string. */
export const noQuery = { type: 'object', additionalProperties: false } as const

const object = (properties: Record<string, unknown>, required = Object.keys(properties)) =>
  ({ type: 'object', properties, required, additionalProperties: false }) as const

/**
 * Every 4xx and 5xx the example sends: Fastify's own errors ({ statusCode, code, error, message }),
 * the example's, and the rate limiter's problem details (RFC 9457, with `code`).
 */
const failure = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' },
    attemptsLeft: { type: 'integer' },
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    retryAfter: { type: 'integer' }
  }
} as const

const listing = object({ id: { type: 'integer' }, title: { type: 'string' }, city: { type: 'string' }, price: { type: 'integer' } })
const user = object({ id: { type: 'integer' }, email: { type: 'string' }, name: { type: 'string' } })

function replies (ok: Record<number, unknown>) {
  return { ...ok, '4xx': failure, '5xx': failure }
}

export const schemas = {
  index: { querystring: noQuery, response: replies({ 200: object({ name: { type: 'string' }, routes: { type: 'array', items: { type: 'string' } } }) }) },
  stats: {
    querystring: noQuery,
    response: replies({ 200: object({ dbQueries: { type: 'integer' }, cache: { type: 'object', additionalProperties: true } }) })
  },
  listings: {
    querystring: object({ city: text(100) }, []),
    response: replies({ 200: { type: 'array', items: listing } })
  },
  listing: {
    params: object({ id }),
    querystring: noQuery,
    response: replies({
      200: object({ ...listing.properties, ownerId: { type: 'integer' }, views: { type: 'integer' } })
    })
  },
  createListing: {
    querystring: noQuery,
    body: object({ title: text(200), city: text(100), price: count(1_000_000) }),
    response: replies({ 201: listing })
  },
  updateListing: {
    params: object({ id }),
    querystring: noQuery,
    body: object({ price: count(1_000_000) }),
    response: replies({ 200: object({ id: { type: 'integer' }, price: { type: 'integer' } }) })
  },
  sendCode: {
    querystring: noQuery,
    body: object({ email }),
    response: replies({ 200: object({ sent: { type: 'boolean' } }) })
  },
  verifyCode: {
    querystring: noQuery,
    body: object({ email, code: { type: 'string', pattern: '^[0-9]{4,10}$' } }),
    response: replies({ 200: object({ user }) })
  },
  // The logout routes read no body: whatever JSON comes with them is ignored.
  logout: { querystring: noQuery, response: replies({ 200: object({ ok: { type: 'boolean' } }) }) },
  logoutEverywhere: { querystring: noQuery, response: replies({ 200: object({ ended: { type: 'integer' } }) }) },
  dashboard: {
    querystring: noQuery,
    response: replies({
      200: object({
        user,
        bookings: {
          type: 'array',
          items: object({ id: { type: 'integer' }, listingId: { type: 'integer' }, nights: { type: 'integer' }, title: { type: 'string' } })
        },
        listings: { type: 'array', items: object({ id: { type: 'integer' }, title: { type: 'string' }, views: { type: 'integer' } }) }
      })
    })
  },
  book: {
    querystring: noQuery,
    body: object({ listingId: count(9_999_999_999), nights: count(60) }),
    response: replies({ 201: object({ id: { type: 'integer' }, listingId: { type: 'integer' }, nights: { type: 'integer' } }) })
  }
}
