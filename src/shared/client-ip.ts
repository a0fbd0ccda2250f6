// Client IP addresses in one form, so limits, exemptions, logs and loopback checks agree on who
// a client is: IPv6 in RFC 5952 text (lower case, `::` compressed), and an IPv4 client seen
// through an IPv6 socket (`::ffff:192.0.2.7`) as plain IPv4.

import net from 'node:net';

/** normalizeIp - the one spelling of a client address (anything not an IP: trimmed, lower case). */
export function normalizeIp(ip: string): string {
  const s = ip.trim();
  if (net.isIPv4(s)) return s;
  const bare = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  if (!net.isIPv6(bare)) return s.toLowerCase();
  const canonical = new net.SocketAddress({ address: bare, family: 'ipv6' }).address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(canonical);
  return mapped && net.isIPv4(mapped[1]!) ? mapped[1]! : canonical;
}

/** isLoopbackIp - 127.0.0.0/8 or ::1 (in any spelling). */
export function isLoopbackIp(ip: string): boolean {
  const n = normalizeIp(ip);
  return n === '::1' || (net.isIPv4(n) && n.startsWith('127.'));
}
