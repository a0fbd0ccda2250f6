// IPC codec - one message per line: `name` or `name: p1 ; p2 ; p3` (DESIGN.md "IPC wire format").
//
// Writers percent-encode `%`, `;`, CR, LF and leading/trailing white space; readers split on `;`,
// trim spaces and tabs around each parameter, then decode `%XX`. Lines end in CRLF on output;
// a bare LF is accepted on input.

/** A parsed IPC message: its lower-case name and its decoded parameters. */
export interface Message {
  name: string;
  params: string[];
}

/** The longest line a reader accepts, terminator included (64 KiB). */
export const MAX_LINE_BYTES = 64 * 1024;

const NAME_RE = /^[a-z][a-z0-9_-]*$/;
/** What encodeParam changes: `%`, `;`, CR, LF, white space at either end (as \s in its trims). */
const NEEDS_ENCODING = /[%;\r\n]|^\s|\s$/u;

export class CodecError extends Error {}

/** encodeParam - make one parameter safe to place between `;` separators. */
export function encodeParam(value: string): string {
  // Most parameters need nothing (an `index` answer is 500,000 of them): one test, no copy.
  if (!NEEDS_ENCODING.test(value)) return value;
  let out = '';
  for (const ch of value) {
    if (ch === '%') out += '%25';
    else if (ch === ';') out += '%3B';
    else if (ch === '\r') out += '%0D';
    else if (ch === '\n') out += '%0A';
    else out += ch;
  }
  // Readers trim white space, so any at either end must survive as %XX.
  const lead = /^\s+/u.exec(out)?.[0] ?? '';
  if (lead.length === out.length) return percentAll(out);
  const trail = /\s+$/u.exec(out)?.[0] ?? '';
  return percentAll(lead) + out.slice(lead.length, out.length - trail.length) + percentAll(trail);
}

function percentAll(s: string): string {
  if (s === '') return s;
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/** decodeParam - undo encodeParam; a `%` not followed by two hex digits stays as it is. */
export function decodeParam(raw: string): string {
  if (!raw.includes('%')) return raw;
  const bytes: number[] = [];
  const src = Buffer.from(raw, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x25 && i + 2 < src.length && isHex(src[i + 1]!) && isHex(src[i + 2]!)) {
      bytes.push(parseInt(String.fromCharCode(src[i + 1]!, src[i + 2]!), 16));
      i += 2;
    } else {
      bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

/** formatMessage - one wire line, CRLF included. */
export function formatMessage(name: string, params: readonly string[] = []): string {
  if (params.length === 0) return name + '\r\n';
  return name + ': ' + params.map(encodeParam).join(' ; ') + '\r\n';
}

function trimSpaces(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s[start] === ' ' || s[start] === '\t')) start++;
  while (end > start && (s[end - 1] === ' ' || s[end - 1] === '\t')) end--;
  return s.slice(start, end);
}

/**
 * parseMessage - one line (terminator already removed, or still present) to a Message.
 * Throws CodecError for an empty line or a malformed name.
 */
export function parseMessage(line: string): Message {
  if (line.endsWith('\n')) line = line.slice(0, line.endsWith('\r\n') ? -2 : -1);
  const colon = line.indexOf(':');
  const rawName = trimSpaces(colon < 0 ? line : line.slice(0, colon)).toLowerCase();
  if (rawName === '') throw new CodecError('empty message');
  if (!NAME_RE.test(rawName)) throw new CodecError('malformed message name');
  if (colon < 0) return { name: rawName, params: [] };
  // One pass over the parameters (a `list` answer is 100,000 of these lines): no split, no map.
  const params: string[] = [];
  let from = colon + 1;
  for (;;) {
    let end = line.indexOf(';', from);
    const last = end < 0;
    if (last) end = line.length;
    let a = from;
    let b = end;
    while (a < b && (line.charCodeAt(a) === 32 || line.charCodeAt(a) === 9)) a++;
    while (b > a && (line.charCodeAt(b - 1) === 32 || line.charCodeAt(b - 1) === 9)) b--;
    const p = line.slice(a, b);
    params.push(p.indexOf('%') < 0 ? p : decodeParam(p));
    if (last) break;
    from = end + 1;
  }
  return { name: rawName, params };
}

/**
 * decimalIn - the decimal number that is exactly line[from, to) (1 to 15 digits), or -1: for
 * clients that read a long answer's lines in place instead of through parseMessage.
 */
export function decimalIn(line: string, from: number, to: number): number {
  if (from >= to || to - from > 15) return -1;
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = line.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}
