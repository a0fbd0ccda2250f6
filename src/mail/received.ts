// The Received: trace header smtpd puts at the top of each accepted message (RFC 5321 4.4),
// laid out like Postfix's:
//
//   Received: from HELO (unknown [IP])
//   	by HOSTNAME with ESMTPSA id QID
//   	for <rcpt>; Wed, 25 Nov 2026 14:00:00 +0000
//
// Everything the client chose (HELO, recipient) is reduced to characters that cannot end the
// header or start a new one, so no value can inject a header line.

import net from 'node:net';

export interface ReceivedInfo {
  /** HELO/EHLO name as the client gave it ('' when none). */
  helo: string;
  /** Client IP address. */
  ip: string;
  /** Our host name. */
  hostname: string;
  /** SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA (RFC 3848). */
  protocol: string;
  qid: string;
  /** Envelope recipients; named in the header only when there is exactly one (privacy). */
  rcpt: string[];
  date?: Date;
}

/** sanitizeHelo - a HELO argument reduced to host-name and address-literal characters. */
export function sanitizeHelo(helo: string): string {
  const clean = helo.replace(/[^A-Za-z0-9.\-_:[\]]/g, '?').slice(0, 255);
  return clean || 'unknown';
}

/** rfc5322Date - e.g. `Wed, 25 Nov 2026 14:00:00 +0000`. */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

// An address we can show inside <>: no white space, no brackets, quotes or control characters.
const SAFE_RCPT = /^[^\s<>()";\\\x00-\x1f\x7f]{1,320}$/u;

/** formatReceived - the header, folded, ending in CRLF. */
export function formatReceived(info: ReceivedInfo): string {
  const ipLiteral = net.isIPv6(info.ip) ? `IPv6:${info.ip}` : info.ip;
  const one = info.rcpt.length === 1 && SAFE_RCPT.test(info.rcpt[0]!) ? info.rcpt[0]! : '';
  const protocol = /^(E?SMTP)S?A?$/.test(info.protocol) ? info.protocol : 'SMTP';
  return (
    `Received: from ${sanitizeHelo(info.helo)} (unknown [${ipLiteral}])\r\n` +
    `\tby ${info.hostname} with ${protocol} id ${info.qid}` +
    (one ? `\r\n\tfor <${one}>` : '') +
    `; ${rfc5322Date(info.date ?? new Date())}\r\n`
  );
}
