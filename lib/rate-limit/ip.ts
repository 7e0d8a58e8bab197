import { isIP } from 'node:net'

/**
 * The client part of a rate-limit key for an IP address: IPv4 as is, IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`) as the IPv4 address, other IPv6 addresses as their network of
 * `subnet` bits (`2001:db8:1:2::/64` by default), since one host usually owns a whole /64.
 * Returns undefined for anything that is not an IP address.
 */
export function normalizeIp (ip: string | undefined, subnet = 64): string | undefined {
  if (ip === undefined) return undefined
  // The common case, without isIP's regular expression (a few microseconds a request).
  if (isDottedQuad(ip)) return ip
  const zone = ip.indexOf('%')
  const addr = zone === -1 ? ip : ip.slice(0, zone)
  const version = isIP(addr)
  if (version === 4) return addr
  if (version !== 6) return undefined
  const groups = expandIpv6(addr.toLowerCase())
  // ::ffff:0:0/96 holds IPv4 addresses, whichever way they were written.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const hi = groups[6] as number
    const lo = groups[7] as number
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  return ipv6Network(groups, subnet)
}

/** `2001:db8:1:2::/64`: the groups that the prefix covers, the last one masked. */
function ipv6Network (groups: number[], bits: number): string {
  const n = Math.ceil(bits / 16)
  let out = ''
  for (let i = 0; i < n; i++) {
    const keep = Math.min(16, bits - 16 * i)
    const g = (groups[i] as number) & ((0xffff << (16 - keep)) & 0xffff)
    out += (i === 0 ? '' : ':') + g.toString(16)
  }
  return out + (n < 8 ? '::/' : '/') + bits
}

/** True for an IPv6 prefix length that `normalizeIp` takes: an integer from 1 to 128. */
export function isIpv6Subnet (bits: unknown): bits is number {
  return Number.isSafeInteger(bits) && (bits as number) >= 1 && (bits as number) <= 128
}

/** The eight 16-bit groups of a valid IPv6 address (an embedded IPv4 tail included). */
function expandIpv6 (addr: string): number[] {
  let text = addr
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number]
    text = text.slice(0, v4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16)
  }
  const [head = '', tail] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const middle = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0')
  return [...left, ...middle, ...right].map((g) => parseInt(g, 16))
}

/** True for a canonical IPv4 address (`1.2.3.4`, no leading zeros), by a scan of its characters. */
function isDottedQuad (ip: string): boolean {
  let parts = 0
  let value = 0
  let digits = 0
  for (let i = 0; i <= ip.length; i++) {
    const c = i === ip.length ? 46 : ip.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || value > 255 || (digits > 1 && ip.charCodeAt(i - digits) === 48)) return false
      parts++
      value = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      value = value * 10 + c - 48
      if (++digits > 3) return false
    } else {
      return false
    }
  }
  return parts === 4
}
