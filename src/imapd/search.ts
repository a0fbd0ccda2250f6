// SEARCH (RFC 9051 §6.4.4, ESEARCH RFC 4731, MODSEQ RFC 7162): the keys parsed into a tree,
// then evaluated message by message. Keys on flags, sizes, dates and numbers need only the
// metadata; header and text keys read the message (the session fetches it only then).
// Text matching is case-insensitive substring on decoded header values and on the raw body.

import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';

import { parseSearchDate } from './encode.js';
import { headerFields, headerValue } from './mime.js';
import { Args, ParseError, parseNumber } from './parser.js';
import { type Range, SeqMatcher, parseSequenceSet } from './sequence.js';
import type { MessageMeta } from './store.js';

export type SearchKey =
  | { k: 'all' }
  | { k: 'flag'; flag: string; set: boolean }
  | { k: 'new' }
  | { k: 'old' }
  | { k: 'recent' }
  | { k: 'size'; larger: boolean; n: number }
  | { k: 'date'; field: 'internal' | 'sent'; op: 'before' | 'on' | 'since'; day: number }
  | { k: 'seq'; ranges: Range[] }
  | { k: 'uid'; ranges: Range[] }
  | { k: 'header'; name: string; value: string }
  | { k: 'body'; value: string }
  | { k: 'text'; value: string }
  | { k: 'modseq'; n: number }
  | { k: 'not'; key: SearchKey }
  | { k: 'or'; a: SearchKey; b: SearchKey }
  | { k: 'and'; keys: SearchKey[] };

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
};

const HEADER_KEYS = new Set(['FROM', 'TO', 'CC', 'BCC', 'SUBJECT']);

export class BadCharsetError extends Error {}

/** ESEARCH RETURN options (RFC 4731), with CONTEXT=SEARCH's UPDATE and PARTIAL (RFC 5267). */
export interface ReturnOptions {
  options: string[];
  /** PARTIAL low:high, 1-based positions in the result, low <= high. */
  partial: [number, number] | null;
}

export interface SearchProgram {
  key: SearchKey;
  /** ESEARCH RETURN options (null = plain SEARCH response). */
  returns: ReturnOptions | null;
  needsRaw: boolean;
  usesModseq: boolean;
}

/** parseSearch - `[RETURN (...)] [CHARSET x] key...` */
export function parseSearch(args: Args): SearchProgram {
  const returns = parseReturn(args);
  const t = args.peek();
  if (t?.t === 'atom' && t.v.toUpperCase() === 'CHARSET') {
    args.next('CHARSET');
    checkCharset(args.astring('charset'));
  }
  return { ...parseSearchKeys(args), returns };
}

/** parseReturn - `RETURN (MIN MAX ALL COUNT SAVE UPDATE PARTIAL m:n)` if it comes next (empty = ALL), else null. */
export function parseReturn(args: Args): ReturnOptions | null {
  const t = args.peek();
  if (t?.t !== 'atom' || t.v.toUpperCase() !== 'RETURN') return null;
  args.next('RETURN');
  const list = args.list('return options');
  const options: string[] = [];
  let partial: [number, number] | null = null;
  for (let i = 0; i < list.length; i++) {
    const x = list[i]!;
    if (x.t !== 'atom') throw new ParseError('Bad RETURN option');
    const o = x.v.toUpperCase();
    if (o === 'PARTIAL') {
      const r = list[++i];
      const m = r?.t === 'atom' ? /^([0-9]+):([0-9]+)$/.exec(r.v) : null;
      if (!m) throw new ParseError('PARTIAL needs a range low:high');
      const a = parseNumber(m[1]!);
      const b = parseNumber(m[2]!);
      if (a < 1 || b < 1) throw new ParseError('Bad PARTIAL range');
      partial = [Math.min(a, b), Math.max(a, b)];
    } else if (['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE', 'UPDATE'].includes(o)) {
      options.push(o);
    } else {
      throw new ParseError(`Unknown RETURN option ${o.slice(0, 40)}`);
    }
  }
  if (partial && options.includes('ALL')) throw new ParseError('PARTIAL and ALL together');
  if (!options.length && !partial) options.push('ALL');
  return { options, partial };
}

/** checkCharset - the search charsets we take (strings are matched as UTF-8). */
export function checkCharset(charset: string): void {
  const cs = charset.toUpperCase();
  if (cs !== 'UTF-8' && cs !== 'US-ASCII') throw new BadCharsetError(cs);
}

/** parseSearchKeys - the search keys up to the end of the command (ANDed). */
export function parseSearchKeys(args: Args): Omit<SearchProgram, 'returns'> {
  const keys: SearchKey[] = [];
  const state = { needsRaw: false, usesModseq: false };
  while (!args.done) keys.push(parseKey(args, state, 0));
  if (!keys.length) throw new ParseError('Missing search key');
  return { key: keys.length === 1 ? keys[0]! : { k: 'and', keys }, ...state };
}

function parseKey(args: Args, st: { needsRaw: boolean; usesModseq: boolean }, depth: number): SearchKey {
  if (depth > 32) throw new ParseError('Search keys nested too deep');
  const tok = args.next('search key');
  if (tok.t === 'list') {
    const inner = new Args(tok.v);
    const keys: SearchKey[] = [];
    while (!inner.done) keys.push(parseKey(inner, st, depth + 1));
    if (!keys.length) throw new ParseError('Empty search list');
    return { k: 'and', keys };
  }
  if (tok.t !== 'atom') throw new ParseError('Bad search key');
  const word = tok.v.toUpperCase();
  const flag = FLAG_KEYS[word];
  if (flag) return { k: 'flag', flag: flag[0], set: flag[1] };
  const dateOf = (): number => {
    const d = parseSearchDate(args.astring('date'));
    if (d === null) throw new ParseError('Bad date');
    return d;
  };
  switch (word) {
    case 'ALL':
      return { k: 'all' };
    case 'NEW':
      return { k: 'new' };
    case 'OLD':
      return { k: 'old' };
    case 'RECENT':
      return { k: 'recent' };
    case 'KEYWORD':
      return { k: 'flag', flag: args.atom('keyword'), set: true };
    case 'UNKEYWORD':
      return { k: 'flag', flag: args.atom('keyword'), set: false };
    case 'LARGER':
      return { k: 'size', larger: true, n: args.number() };
    case 'SMALLER':
      return { k: 'size', larger: false, n: args.number() };
    case 'BEFORE':
    case 'ON':
    case 'SINCE':
      return { k: 'date', field: 'internal', op: word.toLowerCase() as 'on', day: dateOf() };
    case 'SENTBEFORE':
    case 'SENTON':
    case 'SENTSINCE':
      st.needsRaw = true;
      return { k: 'date', field: 'sent', op: word.slice(4).toLowerCase() as 'on', day: dateOf() };
    case 'UID':
      return { k: 'uid', ranges: parseSequenceSet(args.atom('UID set')) };
    case 'NOT':
      return { k: 'not', key: parseKey(args, st, depth + 1) };
    case 'OR': {
      const a = parseKey(args, st, depth + 1);
      return { k: 'or', a, b: parseKey(args, st, depth + 1) };
    }
    case 'HEADER': {
      st.needsRaw = true;
      const name = args.astring('header name').toLowerCase();
      return { k: 'header', name, value: args.astring('value') };
    }
    case 'BODY':
      st.needsRaw = true;
      return { k: 'body', value: args.astring('value') };
    case 'TEXT':
      st.needsRaw = true;
      return { k: 'text', value: args.astring('value') };
    case 'MODSEQ': {
      st.usesModseq = true;
      // Optional entry name and type (RFC 7162): "/flags/\\Seen" all
      let v = args.next('mod-sequence');
      if (v.t === 'string') {
        args.atom('entry type');
        v = args.next('mod-sequence');
      }
      if (v.t !== 'atom') throw new ParseError('Bad MODSEQ');
      return { k: 'modseq', n: parseNumber(v.v) };
    }
    default:
      if (HEADER_KEYS.has(word)) {
        st.needsRaw = true;
        return { k: 'header', name: word.toLowerCase(), value: args.astring('value') };
      }
      if (/^[0-9*]/.test(word)) return { k: 'seq', ranges: parseSequenceSet(tok.v) };
      throw new ParseError(`Unknown search key ${word.slice(0, 40)}`);
  }
}

/** What a key is evaluated against. */
export interface SearchContext {
  seq: number;
  meta: MessageMeta;
  /** The raw message when the program needs it. */
  raw: Buffer | null;
  maxSeq: number;
  maxUid: number;
  /** \Recent in this session. */
  recent: boolean;
}

const DAY = 86_400_000;

/** matches - whether one message satisfies the key. */
export function matches(key: SearchKey, c: SearchContext, cache: Map<Range[], SeqMatcher> = new Map()): boolean {
  switch (key.k) {
    case 'all':
      return true;
    case 'flag':
      return hasFlag(c.meta.flags, key.flag) === key.set;
    case 'recent':
      return c.recent;
    case 'new':
      return c.recent && !hasFlag(c.meta.flags, '\\Seen');
    case 'old':
      return !c.recent;
    case 'size':
      return key.larger ? c.meta.size > key.n : c.meta.size < key.n;
    case 'date': {
      const t = key.field === 'internal' ? c.meta.internalDate : sentDate(c.raw);
      if (t === null) return false;
      const day = Math.floor(t / DAY) * DAY;
      return key.op === 'on' ? day === key.day : key.op === 'before' ? day < key.day : day >= key.day;
    }
    case 'seq':
      return matcher(cache, key.ranges, c.maxSeq).has(c.seq);
    case 'uid':
      return matcher(cache, key.ranges, c.maxUid).has(c.meta.uid);
    case 'modseq':
      return c.meta.modseq >= key.n;
    case 'header': {
      if (!c.raw) return false;
      const fields = headerFields(headerBlock(c.raw));
      const wanted = key.value.toLowerCase();
      return fields.some((f) => {
        if (f.key !== key.name) return false;
        if (wanted === '') return true;
        const v = headerValue([f], key.name) ?? '';
        if (decode(v).toLowerCase().includes(wanted)) return true;
        return ADDRESS_HEADERS.has(key.name) && addressText(v).toLowerCase().includes(wanted);
      });
    }
    case 'body':
    case 'text': {
      if (!c.raw) return false;
      const wanted = key.value.toLowerCase();
      const head = headerBlock(c.raw);
      const body = c.raw.subarray(head.length).toString('utf8').toLowerCase();
      if (body.includes(wanted)) return true;
      return key.k === 'text' && decode(head.toString('utf8')).toLowerCase().includes(wanted);
    }
    case 'not':
      return !matches(key.key, c, cache);
    case 'or':
      return matches(key.a, c, cache) || matches(key.b, c, cache);
    case 'and':
      return key.keys.every((k) => matches(k, c, cache));
  }
}

function matcher(cache: Map<Range[], SeqMatcher>, ranges: Range[], star: number): SeqMatcher {
  let m = cache.get(ranges);
  if (!m) {
    m = new SeqMatcher(ranges, star);
    cache.set(ranges, m);
  }
  return m;
}

export function hasFlag(flags: readonly string[], flag: string): boolean {
  const f = flag.toLowerCase();
  return flags.some((x) => x.toLowerCase() === f);
}

function headerBlock(raw: Buffer): Buffer {
  const a = raw.indexOf('\r\n\r\n');
  const b = raw.indexOf('\n\n');
  const end = a >= 0 && (b < 0 || a < b) ? a + 4 : b >= 0 ? b + 2 : raw.length;
  return raw.subarray(0, end);
}

function sentDate(raw: Buffer | null): number | null {
  if (!raw) return null;
  const v = headerValue(headerFields(headerBlock(raw)), 'date');
  if (!v) return null;
  // The date as written, in the sender's own time zone (RFC 9051: time and zone disregarded).
  const m = /([0-9]{1,2})\s+([A-Za-z]{3})[a-z]*\s+([0-9]{2,4})/.exec(v);
  if (!m) return null;
  const month = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].indexOf(m[2]!.toLowerCase());
  if (month < 0) return null;
  let year = Number(m[3]);
  if (year < 100) year += year < 50 ? 2000 : 1900;
  return Date.UTC(year, month, Number(m[1]));
}

const ADDRESS_HEADERS = new Set(['from', 'to', 'cc', 'bcc', 'sender', 'reply-to']);

/**
 * addressText - an address field as parsed addresses, "Name <local@domain>", comments and
 * whitespace inside the address gone (as Dovecot searches it): `<a (c)@ (c) b.org>` is a@b.org.
 */
function addressText(v: string): string {
  const one = (a: { name: string; address?: string }): string => (a.name ? `${decode(a.name)} <${a.address ?? ''}>` : `<${a.address ?? ''}>`);
  try {
    return addressparser(v)
      .map((a) => (a.group !== undefined ? `${a.name}: ${a.group.map(one).join(', ')};` : one(a)))
      .join(', ');
  } catch {
    return '';
  }
}

function decode(v: string): string {
  try {
    return libmime.decodeWords(v);
  } catch {
    return v;
  }
}

