import { isIP } from 'node:net'

/**
 * The client part of a rate-limit key for an IP address: IPv4 as is, IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`) as the IPv4 address, other IPv6 addresses as their /64 network
 * (`2001:db8:1:2::/64`), since one host usually owns a whole /64. Returns undefined for
 * anything that is not an IP address.
 */
export function normalizeIp (ip: string | undefined): string | undefined {
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
  return groups.slice(0, 4).map((g) => g.toString(16)).join(':') + '::/64'
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
