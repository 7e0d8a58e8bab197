import type { LimitResult, Policy, PolicyState } from './limiter.js'

/** Which headers to send: the IETF draft's, the legacy `X-RateLimit-*`, both, or none. */
export type HeaderMode = 'draft' | 'legacy' | 'both' | false

const seconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000))

// RateLimit-Policy depends on the policies only. Each Policy object belongs to one list (made
// once per route), so the list's first policy identifies the header.
const policyHeaders = new WeakMap<Policy, string>()
function policyHeader (states: PolicyState[]): string {
  const first = states[0]?.policy
  let header = first === undefined ? undefined : policyHeaders.get(first)
  if (header === undefined) {
    header = states.map(({ policy }) => `"${policy.name}";q=${policy.limit};w=${seconds(policy.windowMs)}`).join(', ')
    if (first !== undefined) policyHeaders.set(first, header)
  }
  return header
}

/**
 * Response headers for a result, as structured fields per draft-ietf-httpapi-ratelimit-headers-10:
 * `RateLimit-Policy: "name";q=<quota>;w=<window s>` and `RateLimit: "name";r=<remaining>;t=<s>`,
 * one list member per policy. Names are validated tokens, so they need no escaping in the
 * sf-string. The legacy headers describe the policy with the fewest requests left.
 */
export function rateLimitHeaders (result: LimitResult, mode: HeaderMode): Record<string, string> {
  const headers: Record<string, string> = {}
  if (mode === 'draft' || mode === 'both') {
    headers['ratelimit-policy'] = policyHeader(result.policies)
    headers.ratelimit = result.policies
      .map((s) => `"${s.policy.name}";r=${s.remaining};t=${seconds(s.resetMs)}`).join(', ')
  }
  if (mode === 'legacy' || mode === 'both') {
    const tightest = result.policies.reduce<PolicyState | undefined>((min, s) => min === undefined || s.remaining < min.remaining ? s : min, undefined)
    if (tightest !== undefined) {
      headers['x-ratelimit-limit'] = String(tightest.policy.limit)
      headers['x-ratelimit-remaining'] = String(tightest.remaining)
      headers['x-ratelimit-reset'] = String(seconds(tightest.resetMs))
    }
  }
  if (!result.allowed) headers['retry-after'] = String(Math.max(1, seconds(result.retryAfterMs)))
  return headers
}
