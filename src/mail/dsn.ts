// Delivery status notifications (RFC 3464): the bounce a sender gets when mail to some of its
// recipients failed for good. multipart/report with a human part, a message/delivery-status
// part (one block per recipient) and the original headers as text/rfc822-headers (RFC 6522),
// never the body: a bounce must not carry the payload back (backscatter, size).

import { randomBytes } from 'node:crypto';

export interface DsnRecipient {
  /** The envelope recipient that failed. */
  rcpt: string;
  /** Enhanced status code, e.g. `5.1.1` (RFC 3463). */
  status: string;
  /** What the remote server (or we) said, e.g. `550 5.1.1 no such user`. */
  diagnostic: string;
  /** Host that gave the answer, when it came from a remote server. */
  remoteMta?: string;
}

export interface DsnInput {
  /** Our host name: Reporting-MTA and the MAILER-DAEMON address. */
  hostname: string;
  /** The failed message's queue id. */
  qid: string;
  /** Who gets the report (the original envelope sender, or postmaster for a double bounce). */
  to: string;
  /** ISO arrival time of the original message. */
  arrival: string;
  recipients: DsnRecipient[];
  /** The original header block (up to its blank line). */
  headers: Buffer;
  now?: Date;
}

/** buildDsn - the complete RFC 5322 message of a bounce, CRLF line ends. */
export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `${input.qid}.${Math.floor(now.getTime() / 1000)}/${input.hostname}`;
  const from = `MAILER-DAEMON@${input.hostname}`;
  const human = [
    `This is the mail system at host ${input.hostname}.`,
    '',
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients. It is attached below.',
    '',
    ...input.recipients.map((r) => `<${r.rcpt}>: ${oneLine(r.diagnostic)}`),
  ];
  const perMessage = [`Reporting-MTA: dns; ${input.hostname}`, `X-FancyMail-Queue-ID: ${input.qid}`];
  const arrival = new Date(input.arrival);
  if (!Number.isNaN(arrival.getTime())) perMessage.push(`Arrival-Date: ${arrival.toUTCString().replace('GMT', '+0000')}`);
  const blocks = input.recipients.map((r) => {
    const lines = [
      `Final-Recipient: ${/[^\x00-\x7f]/.test(r.rcpt) ? 'utf-8' : 'rfc822'}; ${oneLine(r.rcpt)}`,
      'Action: failed',
      `Status: ${/^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status) ? r.status : '5.0.0'}`,
    ];
    if (r.remoteMta) lines.push(`Remote-MTA: dns; ${oneLine(r.remoteMta)}`);
    lines.push(`Diagnostic-Code: smtp; ${oneLine(r.diagnostic)}`);
    return lines.join('\r\n');
  });
  const headers = trimHeaders(input.headers);
  const eightBit = /[^\x00-\x7f]/.test(headers.toString('latin1')) || input.recipients.some((r) => /[^\x00-\x7f]/.test(r.rcpt + r.diagnostic));
  const top = [
    `From: Mail Delivery System <${from}>`,
    `To: <${input.to}>`,
    'Subject: Undelivered Mail Returned to Sender',
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${input.qid}.${randomBytes(6).toString('hex')}@${input.hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    perMessage.join('\r\n'),
    '',
    blocks.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(top, 'utf8'), headers, Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8')]);
}

/** headerBlock - the header part of a message (without its blank line), at most `max` bytes. */
export function headerBlock(message: Buffer, max = 64 * 1024): Buffer {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  let end = message.length;
  if (crlf >= 0 && (lf < 0 || crlf <= lf)) end = crlf;
  else if (lf >= 0) end = lf;
  return message.subarray(0, Math.min(end, max));
}

// A diagnostic is one header field line: no CR/LF, bounded.
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trim().slice(0, 900);
}

// Normalises line ends to CRLF and cuts a partial last line, so the part stays well-formed.
function trimHeaders(h: Buffer): Buffer {
  let text = h.toString('latin1').replace(/\r?\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  return Buffer.from(text, 'latin1');
}
