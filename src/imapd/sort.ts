// SORT (RFC 5256, SORT=DISPLAY RFC 5957): the sort keys of a message and their order, and the
// base subject and sent date that THREAD (thread.ts) uses too.
//
// Every key is read from the message's header once per command (a MessageFacts). Ties between
// messages that compare equal on every key are broken by message number, ascending, also under
// REVERSE (RFC 5256 §3: REVERSE reverses a key, not the tie-break).

import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';

import { headerFields, headerValue } from './mime.js';
import { ParseError, type Token } from './parser.js';

export type SortKeyName = 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO';
export interface SortKey {
  key: SortKeyName;
  reverse: boolean;
}

/** The MessageFacts field each key sorts on. */
const FIELD = {
  ARRIVAL: 'internalDate',
  DATE: 'sentDate',
  SIZE: 'size',
  SUBJECT: 'subject',
  FROM: 'from',
  TO: 'to',
  CC: 'cc',
  DISPLAYFROM: 'displayFrom',
  DISPLAYTO: 'displayTo',
} as const satisfies Record<SortKeyName, keyof MessageFacts>;

/** parseSortCriteria - `(REVERSE DATE SUBJECT)` as keys; every REVERSE must precede a key. */
export function parseSortCriteria(list: Token[]): SortKey[] {
  const keys: SortKey[] = [];
  let reverse = false;
  for (const t of list) {
    if (t.t !== 'atom') throw new ParseError('Bad sort criterion');
    const w = t.v.toUpperCase();
    if (w === 'REVERSE') {
      if (reverse) throw new ParseError('REVERSE twice');
      reverse = true;
      continue;
    }
    if (!Object.hasOwn(FIELD, w)) throw new ParseError(`Unknown sort criterion ${w.slice(0, 40)}`);
    keys.push({ key: w as SortKeyName, reverse });
    reverse = false;
  }
  if (reverse || !keys.length) throw new ParseError('Bad sort criteria');
  return keys;
}

/** What SORT and THREAD need of one message, read from its header. */
export interface MessageFacts {
  seq: number;
  uid: number;
  size: number;
  internalDate: number;
  /** The Date header in ms (UTC), or INTERNALDATE when it is missing or unreadable. */
  sentDate: number;
  /** RFC 5256 base subject, upper-cased for comparison. */
  subject: string;
  /** The base subject extraction removed a reply or forward marker. */
  replyOrForward: boolean;
  messageId: string | null;
  /** References (or else the first msg-id of In-Reply-To), normalized. */
  references: string[];
  from: string;
  to: string;
  cc: string;
  displayFrom: string;
  displayTo: string;
}

/** messageFacts - read the sort and thread keys from a raw message (header only). */
export function messageFacts(seq: number, meta: { uid: number; size: number; internalDate: number }, raw: Buffer | null): MessageFacts {
  const fields = raw ? headerFields(headerBlock(raw)) : [];
  const v = (k: string): string | null => headerValue(fields, k);
  const subj = baseSubject(v('subject') ?? '');
  const from = firstAddress(v('from'));
  const to = firstAddress(v('to'));
  const refs = msgIds(v('references') ?? '');
  return {
    seq,
    uid: meta.uid,
    size: meta.size,
    internalDate: meta.internalDate,
    sentDate: parseMailDate(v('date') ?? '') ?? meta.internalDate,
    subject: casemap(subj.base),
    replyOrForward: subj.replyOrForward,
    messageId: msgIds(v('message-id') ?? '')[0] ?? null,
    references: refs.length ? refs : msgIds(v('in-reply-to') ?? '').slice(0, 1),
    from: casemap(from.mailbox),
    to: casemap(to.mailbox),
    cc: casemap(firstAddress(v('cc')).mailbox),
    displayFrom: casemap(from.display),
    displayTo: casemap(to.display),
  };
}

/** compareFacts - the SORT order for these keys, message number last. */
export function compareFacts(keys: SortKey[]): (a: MessageFacts, b: MessageFacts) => number {
  return (a, b) => {
    for (const k of keys) {
      const c = compareKey(k.key, a, b);
      if (c !== 0) return k.reverse ? -c : c;
    }
    return a.seq - b.seq;
  };
}

/** compareKey - one key's order: numbers (dates, size) or upper-cased strings, ascending. */
function compareKey(key: SortKeyName, a: MessageFacts, b: MessageFacts): number {
  const x = a[FIELD[key]];
  const y = b[FIELD[key]];
  return x < y ? -1 : x > y ? 1 : 0;
}

/** casemap - the comparator's case folding (i;unicode-casemap, simply: upper case). */
function casemap(s: string): string {
  return s.toUpperCase();
}

export function headerBlock(raw: Buffer): Buffer {
  const a = raw.indexOf('\r\n\r\n');
  const b = raw.indexOf('\n\n');
  const end = a >= 0 && (b < 0 || a < b) ? a + 4 : b >= 0 ? b + 2 : raw.length;
  return raw.subarray(0, end);
}

function decodeWords(v: string): string {
  try {
    return libmime.decodeWords(v);
  } catch {
    return v;
  }
}

/**
 * firstAddress - the first address of a field as ENVELOPE would show it: a group's first
 * entry is the group name. `mailbox` is the local part (SORT FROM/TO/CC); `display` is the
 * decoded display name, or else the addr-spec (SORT=DISPLAY, RFC 5957 §2).
 */
function firstAddress(value: string | null): { mailbox: string; display: string } {
  if (!value) return { mailbox: '', display: '' };
  let first;
  try {
    first = addressparser(value)[0];
  } catch {
    return { mailbox: '', display: '' };
  }
  if (!first) return { mailbox: '', display: '' };
  if (first.group !== undefined) return { mailbox: first.name, display: first.name };
  const address = first.address ?? '';
  const at = address.lastIndexOf('@');
  const mailbox = at >= 0 ? address.slice(0, at) : address;
  const name = decodeWords(first.name ?? '').trim();
  return { mailbox, display: name || address };
}

/** msgIds - the `<...>` message identifiers of a field, normalized (quotes and spaces gone, RFC 5256 §3). */
function msgIds(value: string): string[] {
  const out: string[] = [];
  for (const m of value.matchAll(/<([^<>]*)>/g)) {
    const id = m[1]!.replace(/\s+/g, '').replace(/"((?:[^"\\]|\\.)*)"/g, (_x, q: string) => q.replace(/\\(.)/g, '$1'));
    if (id) out.push(id);
  }
  return out;
}

// ---- base subject (RFC 5256 §2.1) ----

const BLOB = String.raw`\[[^\[\]]*\] *`;
const REFWD = String.raw`(?:re|fwd?) *(?:${BLOB})?:`;
/** subj-leader: *subj-blob subj-refwd, or a space. */
const LEADER = new RegExp(String.raw`^(?:(?:${BLOB})*${REFWD}| )`, 'i');
const TRAILER = /(?:\(fwd\)| )$/i;

/** baseSubject - the subject with reply/forward markers and list tags taken off. */
function baseSubject(raw: string): { base: string; replyOrForward: boolean } {
  // (1) decoded, tabs and folds as spaces, runs of spaces as one.
  let s = decodeWords(raw.replace(/\r?\n(?=[ \t])/g, ''))
    .replace(/[\t\r\n]/g, ' ')
    .replace(/ {2,}/g, ' ');
  let marked = false;
  for (let guard = 0; guard < 100; guard++) {
    // (2) trailers: "(fwd)" and spaces.
    for (let m = TRAILER.exec(s); m; m = TRAILER.exec(s)) {
      if (m[0] !== ' ') marked = true;
      s = s.slice(0, s.length - m[0].length);
    }
    // (3)-(5) leaders and blobs, until neither applies.
    for (let changed = true; changed; ) {
      changed = false;
      const m = LEADER.exec(s);
      if (m && m[0].length) {
        if (m[0] !== ' ') marked = true;
        s = s.slice(m[0].length);
        changed = true;
      }
      const b = new RegExp(`^${BLOB}`).exec(s);
      if (b && b[0].length < s.length) {
        s = s.slice(b[0].length);
        changed = true;
      }
    }
    // (6) "[fwd: ...]" around the whole subject.
    if (/^\[fwd:/i.test(s) && s.endsWith(']')) {
      s = s.slice(5, -1);
      marked = true;
      continue;
    }
    break;
  }
  return { base: s, replyOrForward: marked };
}

// ---- Date header ----

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const ZONES: Record<string, number> = { UT: 0, GMT: 0, Z: 0, EST: -5, EDT: -4, CST: -6, CDT: -5, MST: -7, MDT: -6, PST: -8, PDT: -7 };

/** parseMailDate - an RFC 5322 date-time (obsolete forms too) in ms UTC, or null. */
function parseMailDate(value: string): number | null {
  const m = /^\s*(?:[A-Za-z]{3},?\s*)?([0-9]{1,2})\s+([A-Za-z]{3})[A-Za-z]*\s+([0-9]{2,4})\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?\s*([+-][0-9]{4}|[A-Za-z]{1,5})?/.exec(value.replace(/\([^()]*\)/g, ' '));
  if (!m) return null;
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  if (month < 0) return null;
  let year = Number(m[3]);
  if (m[3]!.length <= 2) year += year < 50 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  let zoneMin = 0;
  const z = m[7];
  if (z && /^[+-]/.test(z)) zoneMin = (Number(z.slice(1, 3)) * 60 + Number(z.slice(3, 5))) * (z[0] === '-' ? -1 : 1);
  else if (z && ZONES[z.toUpperCase()] !== undefined) zoneMin = ZONES[z.toUpperCase()]! * 60;
  const t = Date.UTC(year, month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)) - zoneMin * 60_000;
  return Number.isFinite(t) ? t : null;
}
