// APPEND's arguments beyond one literal: MULTIAPPEND (RFC 3502, several messages in one
// command), CATENATE (RFC 4469, a message built from TEXT literals and IMAP URLs of messages
// the user already has, RFC 5092 relative form) and literal8 (RFC 3516 BINARY). Parsing only:
// the session fetches the URLs and stores the messages.

import { fromWire } from './names.js';
import { type Args, ParseError } from './parser.js';

export type CatPart = { text: Buffer } | { url: string };

export interface AppendMessage {
  flags: string[];
  /** The date-time string as given, or null. */
  date: string | null;
  parts: CatPart[];
  /** Some literal was a literal8: Content-Transfer-Encoding binary parts may be in it. */
  binary: boolean;
}

/** parseAppendMessages - `[flags] [date] (literal | CATENATE (...))`, one or more times. */
export function parseAppendMessages(args: Args): AppendMessage[] {
  const out: AppendMessage[] = [];
  do {
    const msg: AppendMessage = { flags: [], date: null, parts: [], binary: false };
    let t = args.next('message');
    if (t.t === 'list') {
      msg.flags = t.v.map((f) => {
        if (f.t !== 'atom') throw new ParseError('Bad flag');
        return f.v;
      });
      t = args.next('message');
    }
    if (t.t === 'string' && !t.bytes) {
      msg.date = t.v;
      t = args.next('message');
    }
    if (t.t === 'string' && t.bytes) {
      msg.parts.push({ text: t.bytes });
      msg.binary = t.binary === true;
    } else if (t.t === 'atom' && t.v.toUpperCase() === 'CATENATE') {
      const list = args.list('CATENATE parts');
      if (!list.length) throw new ParseError('Empty CATENATE');
      for (let i = 0; i < list.length; i += 2) {
        const kind = list[i]!;
        const value = list[i + 1];
        if (kind.t !== 'atom' || !value || value.t === 'list') throw new ParseError('Bad CATENATE part');
        const k = kind.v.toUpperCase();
        if (k === 'TEXT' && value.t === 'string' && value.bytes) {
          msg.parts.push({ text: value.bytes });
          if (value.binary) msg.binary = true;
        } else if (k === 'URL') {
          msg.parts.push({ url: value.v });
        } else {
          throw new ParseError('Bad CATENATE part');
        }
      }
    } else {
      throw new ParseError('Expected the message as a literal');
    }
    out.push(msg);
    if (out.length > 1000) throw new ParseError('Too many messages in one APPEND');
  } while (!args.done);
  return out;
}

export interface ImapUrl {
  mailbox: string;
  uidvalidity: number | null;
  uid: number;
  /** The section as in BODY[...] ("" = the whole message). */
  section: string;
  partial: [number, number | null] | null;
}

export class BadUrlError extends Error {}

/**
 * parseImapUrl - `/MAILBOX[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]` (RFC 5092),
 * or the same after `imap://user@host` when the user is us. Anything else is BADURL.
 */
export function parseImapUrl(url: string, user: string): ImapUrl {
  let path = url;
  const abs = /^imap:\/\/([^/@]+@)?[^/]+(\/.*)$/i.exec(url);
  if (abs) {
    const who = abs[1] ? decodeURIComponent(abs[1].slice(0, -1).replace(/;.*$/, '')) : null;
    if (who !== null && who.toLowerCase() !== user.toLowerCase()) throw new BadUrlError('URL of another user');
    path = abs[2]!;
  }
  const m = /^\/([^;/][^;]*?)(?:;uidvalidity=([0-9]+))?\/;uid=([0-9]+)(?:\/;section=([^/;]*))?(?:\/;partial=([0-9]+)(?:\.([0-9]+))?)?$/i.exec(path);
  if (!m) throw new BadUrlError('Unsupported IMAP URL');
  let mailbox: string;
  try {
    mailbox = fromWire(decodeURIComponent(m[1]!.replace(/\/$/, '')));
  } catch {
    throw new BadUrlError('Bad mailbox in URL');
  }
  const num = (s: string): number => {
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new BadUrlError('Bad number in URL');
    return n;
  };
  return {
    mailbox,
    uidvalidity: m[2] !== undefined ? num(m[2]) : null,
    uid: num(m[3]!),
    section: m[4] !== undefined ? decodeURIComponent(m[4]) : '',
    partial: m[5] !== undefined ? [num(m[5]), m[6] !== undefined ? num(m[6]) : null] : null,
  };
}

/**
 * base64Parts - a message sent as literal8 may carry Content-Transfer-Encoding binary parts,
 * which are not mail (RFC 3516 §4.4 lets the server re-encode): each becomes base64, its
 * header field rewritten. `parts` are the leaf parts' offsets (see mime.ts).
 */
export function base64Parts(raw: Buffer, parts: Array<{ headerStart: number; bodyStart: number; end: number }>): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const p of [...parts].sort((a, b) => a.headerStart - b.headerStart)) {
    const header = raw.subarray(p.headerStart, p.bodyStart).toString('latin1');
    const rewritten = header.replace(/^(content-transfer-encoding:)[ \t]*binary[ \t]*(\r?\n)/im, 'Content-Transfer-Encoding: base64$2');
    if (rewritten === header || p.headerStart < at) continue;
    const b64 = raw.subarray(p.bodyStart, p.end).toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
    // The line break before a following delimiter is the delimiter's own: add one only at the end.
    const tail = p.end === raw.length ? '\r\n' : '';
    out.push(raw.subarray(at, p.headerStart), Buffer.from(rewritten, 'latin1'), Buffer.from(lines.join('\r\n') + tail, 'latin1'));
    at = p.end;
  }
  if (!out.length) return raw;
  out.push(raw.subarray(at));
  return Buffer.concat(out);
}
