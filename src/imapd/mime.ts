// The MIME structure of a message for FETCH: BODYSTRUCTURE, ENVELOPE and BODY[section].
//
// mailsplit splits the message (boundaries, nested multiparts, header blocks); libmime parses
// Content-Type/Disposition values; nodemailer's addressparser reads address lists. What is ours
// is only the bookkeeping IMAP needs on top: the byte offsets of every part's header and body
// in the original message (mailsplit's chunks, concatenated, are the message byte for byte),
// and the RFC 9051 rendering. A message/rfc822 part is split again from its body, so its
// inner parts get section numbers too (depth-capped). A message mailsplit cannot take (over
// its limits) is described as one text/plain part rather than failing the FETCH.

import { Headers, Splitter, type MimeNode, type SplitterChunk } from 'mailsplit';
import libmime from 'libmime';
import libqp from 'libqp';
import addressparser from 'nodemailer/lib/addressparser';

import { ParseError } from './parser.js';
import { istring, nstring } from './encode.js';

export interface Part {
  /** Offsets into the whole message: header block, then body up to `end` (exclusive). */
  headerStart: number;
  bodyStart: number;
  end: number;
  type: string;
  subtype: string;
  params: Record<string, string>;
  children?: Part[];
  /** For message/rfc822: the encapsulated message, offsets in the same (outer) message. */
  message?: Part;
}

const MAX_NESTING = 8;

/** parseStructure - the part tree of a raw message. */
export async function parseStructure(raw: Buffer): Promise<Part> {
  return parseAt(raw, 0, raw.length, 0);
}

async function parseAt(raw: Buffer, from: number, to: number, depth: number): Promise<Part> {
  let root: Part;
  try {
    root = await split(raw, from, to);
  } catch {
    root = flatPart(raw, from, to);
  }
  if (depth < MAX_NESTING) await nestMessages(raw, root, depth);
  return root;
}

/** nestMessages - parse the body of every message/rfc822 part as a message of its own. */
async function nestMessages(raw: Buffer, part: Part, depth: number): Promise<void> {
  if (part.children) {
    for (const c of part.children) await nestMessages(raw, c, depth);
  } else if (part.type === 'message' && part.subtype === 'rfc822') {
    part.message = await parseAt(raw, part.bodyStart, part.end, depth + 1);
  }
}

/** flatPart - the fallback: the whole range as one text/plain part. */
function flatPart(raw: Buffer, from: number, to: number): Part {
  const blank = findBlankLine(raw, from, to);
  return { headerStart: from, bodyStart: blank, end: to, type: 'text', subtype: 'plain', params: {} };
}

function findBlankLine(raw: Buffer, from: number, to: number): number {
  const crlf = raw.indexOf('\r\n\r\n', from);
  const lf = raw.indexOf('\n\n', from);
  const cands = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((x) => x >= 0 && x <= to);
  return cands.length ? Math.min(...cands) : to;
}

interface Tracked {
  part: Part;
  parent: Tracked | null;
  boundary: Buffer | null;
}

/** split - run mailsplit over raw[from, to) and turn its chunks into parts with offsets. */
function split(raw: Buffer, from: number, to: number): Promise<Part> {
  return new Promise<Part>((resolve, reject) => {
    const splitter = new Splitter({ ignoreEmbedded: true, maxChildNodes: 1000 });
    // mailsplit takes "--b" only when the line break follows at once; RFC 2046 §5.1.1 allows
    // transport padding (spaces, tabs) before it, and Dovecot honours it.
    splitter.compareBoundary = (line, startpos, boundary) => delimiterKind(line, startpos, boundary);
    const byNode = new Map<MimeNode, Tracked>();
    let rootT: Tracked | null = null;
    let off = from;
    const extend = (t: Tracked | null, end: number): void => {
      for (let x = t; x; x = x.parent) if (x.part.end < end) x.part.end = end;
    };
    splitter.on('data', (chunk: SplitterChunk) => {
      if (chunk.type === 'node') {
        const node = chunk;
        const headerLen = node._headerlen;
        const parent = node.parentNode ? (byNode.get(node.parentNode) ?? null) : null;
        const inDigest = parent?.part.type === 'multipart' && parent.part.subtype === 'digest';
        const ct = parseContentType(raw.subarray(off, off + headerLen), inDigest);
        const part: Part = { headerStart: off, bodyStart: off + headerLen, end: off + headerLen, ...ct };
        const t: Tracked = { part, parent, boundary: node._boundary || null };
        if (ct.type === 'multipart') part.children = [];
        byNode.set(node, t);
        if (parent) parent.part.children?.push(part);
        else rootT ??= t;
        off += headerLen;
        extend(t, off);
        return;
      }
      const len = chunk.value.length;
      const t = byNode.get(chunk.node) ?? null;
      if (chunk.type === 'data') {
        const owner = boundaryOwner(chunk.value, t);
        if (owner) {
          trimBeforeBoundary(raw, owner, off, chunk.value);
          extend(owner, off + len);
          off += len;
          return;
        }
      }
      off += len;
      extend(t, off);
    });
    splitter.on('error', reject);
    splitter.on('end', () => {
      if (!rootT || off !== to) return reject(new Error('mailsplit chunks do not cover the message'));
      resolve(rootT.part);
    });
    splitter.end(raw.subarray(from, to));
  });
}

/**
 * delimiterKind - whether line[startpos..] is "--BOUNDARY" (1) or "--BOUNDARY--" (2), each
 * followed by optional spaces/tabs and the line break; 0 when it is neither. A close
 * delimiter may also end the input without a line break.
 */
function delimiterKind(line: Buffer, startpos: number, boundary: Buffer): 0 | 1 | 2 {
  let i = startpos + 2;
  if (line[startpos] !== 45 || line[startpos + 1] !== 45 || line.length < i + boundary.length) return 0;
  if (!line.subarray(i, i + boundary.length).equals(boundary)) return 0;
  i += boundary.length;
  let kind: 1 | 2 = 1;
  if (line[i] === 45 && line[i + 1] === 45) {
    kind = 2;
    i += 2;
  }
  while (line[i] === 32 || line[i] === 9) i++;
  if (i === line.length) return kind === 2 ? 2 : 0;
  const rest = line.length - i;
  if ((rest === 1 && line[i] === 10) || (rest === 2 && line[i] === 13 && line[i + 1] === 10)) return kind;
  return 0;
}

/** boundaryOwner - the multipart (the node or an ancestor) whose delimiter this line is. */
function boundaryOwner(line: Buffer, t: Tracked | null): Tracked | null {
  let k = 0;
  while (k < line.length && k < 2 && (line[k] === 13 || line[k] === 10)) k++;
  for (let x = t; x; x = x.parent) if (x.boundary && delimiterKind(line, k, x.boundary)) return x;
  return null;
}

/**
 * trimBeforeBoundary - the line break before a delimiter belongs to the delimiter (RFC 2046
 * §5.1.1): when the previous part's last chunk carried it, take it off that part's end.
 */
function trimBeforeBoundary(raw: Buffer, owner: Tracked, off: number, line: Buffer): void {
  if (line[0] === 13 || line[0] === 10) return; // the break is in the delimiter line already
  const last = owner.part.children?.[owner.part.children.length - 1];
  const cut = off >= 2 && raw[off - 2] === 13 && raw[off - 1] === 10 ? 2 : off >= 1 && raw[off - 1] === 10 ? 1 : 0;
  if (!cut) return;
  for (let p = last; p && p.end === off; p = p.children?.[p.children.length - 1]) p.end = Math.max(p.bodyStart, off - cut);
}

/** parseContentType - a part's type; without one, text/plain, or message/rfc822 in a digest (RFC 2046 §5.1.5). */
function parseContentType(header: Buffer, inDigest: boolean): { type: string; subtype: string; params: Record<string, string> } {
  const value = headerValue(headerFields(header), 'content-type');
  const parsed = value ? libmime.parseHeaderValue(value) : null;
  const full = (parsed?.value ?? '').toLowerCase().trim();
  const slash = full.indexOf('/');
  if (!parsed || slash <= 0 || slash === full.length - 1 || /\s/.test(full)) {
    if (inDigest && !value) return { type: 'message', subtype: 'rfc822', params: {} };
    return { type: 'text', subtype: 'plain', params: { charset: 'us-ascii' } };
  }
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed.params ?? {})) params[k.toLowerCase()] = String(v);
  return { type: full.slice(0, slash), subtype: full.slice(slash + 1), params };
}

// ---- headers ----

export interface HeaderField {
  key: string;
  /** The whole field as sent ("Name: value", folded), in latin1 so bytes round-trip. */
  line: string;
}

/** headerFields - the fields of a header block (mailsplit's Headers). */
export function headerFields(block: Buffer): HeaderField[] {
  return new Headers(block).getList();
}

/** headerValue - the first field named `key`, unfolded, as UTF-8 when it is, or null. */
export function headerValue(fields: HeaderField[], key: string): string | null {
  const f = fields.find((x) => x.key === key);
  if (!f) return null;
  const v = f.line.slice(f.line.indexOf(':') + 1).replace(/\r?\n(?=[ \t])/g, '').trim();
  return fromLatin1(v);
}

function fromLatin1(v: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(v)) return v;
  const bytes = Buffer.from(v, 'latin1');
  const utf8 = bytes.toString('utf8');
  return Buffer.from(utf8, 'utf8').equals(bytes) ? utf8 : v;
}

/** selectHeaderFields - HEADER.FIELDS / HEADER.FIELDS.NOT of a header block, with the blank line. */
export function selectHeaderFields(block: Buffer, names: string[], not: boolean): Buffer {
  const want = new Set(names.map((n) => n.toLowerCase()));
  const lines = headerFields(block)
    .filter((f) => want.has(f.key) !== not)
    .map((f) => f.line.replace(/\r?\n/g, '\r\n') + '\r\n');
  return Buffer.from(lines.join('') + '\r\n', 'latin1');
}

// ---- sections ----

export interface Section {
  /** Part numbers, e.g. [1, 2] for "1.2"; [] for the message itself. */
  path: number[];
  /** '' (the part's body / whole message), HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME. */
  text: '' | 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';
  fields: string[];
}

/** parseSection - the inside of BODY[...]: "1.2.MIME", "HEADER.FIELDS (From To)", "". */
export function parseSection(spec: string): Section {
  const m = /^([^ (]*)\s*(?:\(([^()]*)\))?$/.exec(spec.trim());
  if (!m) throw new ParseError(`Bad section ${spec}`);
  const words = m[1] ? m[1].split('.') : [];
  const path: number[] = [];
  while (words.length && /^[0-9]+$/.test(words[0]!)) {
    const n = Number(words.shift());
    if (n < 1 || n > 1e6) throw new ParseError(`Bad section ${spec}`);
    path.push(n);
  }
  const text = words.join('.').toUpperCase();
  if (!['', 'HEADER', 'HEADER.FIELDS', 'HEADER.FIELDS.NOT', 'TEXT', 'MIME'].includes(text)) throw new ParseError(`Bad section ${spec}`);
  const isFields = text === 'HEADER.FIELDS' || text === 'HEADER.FIELDS.NOT';
  if (isFields !== (m[2] !== undefined)) throw new ParseError(`Bad section ${spec}`);
  if (text === 'MIME' && path.length === 0) throw new ParseError('MIME needs a part number');
  const fields = isFields ? m[2]!.trim().split(/\s+/).filter(Boolean).map((f) => f.replace(/^"|"$/g, '')) : [];
  if (isFields && fields.length === 0) throw new ParseError('Empty header list');
  return { path, text: text as Section['text'], fields };
}

/** findPart - the part a section path names (RFC 9051 §6.4.5), or null. */
function findPart(root: Part, path: number[]): Part | null {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    const n = path[i]!;
    if (i > 0 && node.message) node = node.message;
    if (node.children) {
      const c = node.children[n - 1];
      if (!c) return null;
      node = c;
    } else if (n !== 1) {
      return null;
    }
  }
  return node;
}

/** sectionBytes - the octets of a section (empty when the part does not exist, as Dovecot does). */
export function sectionBytes(raw: Buffer, root: Part | null, s: Section): Buffer {
  if (s.path.length === 0 && s.text === '') return raw;
  if (!root) {
    // Callers pass no structure for top-level HEADER/TEXT: find the blank line directly.
    const p = flatPart(raw, 0, raw.length);
    return topLevel(raw, p, s);
  }
  if (s.path.length === 0) return topLevel(raw, root, s);
  const part = findPart(root, s.path);
  if (!part) return Buffer.alloc(0);
  switch (s.text) {
    case '':
      return raw.subarray(part.bodyStart, part.end);
    case 'MIME':
      return raw.subarray(part.headerStart, part.bodyStart);
    default:
      return part.message ? topLevel(raw, part.message, s) : Buffer.alloc(0);
  }
}

/** leafParts - every part without children, those inside message/rfc822 parts too. */
export function leafParts(root: Part): Part[] {
  const out: Part[] = [];
  const walk = (p: Part): void => {
    if (p.children) p.children.forEach(walk);
    else if (p.message) walk(p.message);
    else out.push(p);
  };
  walk(root);
  return out;
}

/** A BINARY fetch of a part whose Content-Transfer-Encoding we cannot decode (RFC 3516 UNKNOWN-CTE). */
export class UnknownCteError extends Error {}

/**
 * binaryBytes - BINARY[path] (RFC 3516): a part's body with its Content-Transfer-Encoding
 * undone (base64 by Buffer, quoted-printable by libqp); the whole message for [].
 */
export function binaryBytes(raw: Buffer, root: Part | null, path: number[]): Buffer {
  if (path.length === 0) return raw;
  const part = root ? findPart(root, path) : null;
  if (!part) return Buffer.alloc(0);
  const body = raw.subarray(part.bodyStart, part.end);
  if (part.children) return body;
  const cte = (headerValue(headerFields(raw.subarray(part.headerStart, part.bodyStart)), 'content-transfer-encoding') ?? '7bit').toLowerCase();
  switch (cte) {
    case '7bit':
    case '8bit':
    case 'binary':
      return body;
    case 'base64':
      return Buffer.from(body.toString('latin1'), 'base64');
    case 'quoted-printable':
      return libqp.decode(body);
    default:
      throw new UnknownCteError(cte);
  }
}

function topLevel(raw: Buffer, msg: Part, s: Section): Buffer {
  const header = raw.subarray(msg.headerStart, msg.bodyStart);
  switch (s.text) {
    case 'HEADER':
      return header;
    case 'TEXT':
      return raw.subarray(msg.bodyStart, msg.end);
    case 'HEADER.FIELDS':
      return selectHeaderFields(header, s.fields, false);
    case 'HEADER.FIELDS.NOT':
      return selectHeaderFields(header, s.fields, true);
    default:
      return raw.subarray(msg.headerStart, msg.end);
  }
}

/** needsStructure - whether a section can only be found with the part tree. */
export function needsStructure(s: Section): boolean {
  return s.path.length > 0;
}

// ---- ENVELOPE and BODYSTRUCTURE ----

/** envelope - the ENVELOPE of a header block (RFC 9051 §7.5.2). */
export function envelope(header: Buffer): string {
  const fields = headerFields(header);
  const v = (k: string): string | null => headerValue(fields, k);
  const from = addresses(v('from'));
  const sender = addresses(v('sender')) ?? from;
  const replyTo = addresses(v('reply-to')) ?? from;
  return (
    '(' +
    [
      nstring(v('date')),
      nstring(v('subject')),
      from ?? 'NIL',
      sender ?? 'NIL',
      replyTo ?? 'NIL',
      addresses(v('to')) ?? 'NIL',
      addresses(v('cc')) ?? 'NIL',
      addresses(v('bcc')) ?? 'NIL',
      nstring(v('in-reply-to')),
      nstring(v('message-id')),
    ].join(' ') +
    ')'
  );
}

function addresses(value: string | null): string | null {
  if (value === null || value.trim() === '') return null;
  const out: string[] = [];
  const routes = sourceRoutes(value);
  const one = (name: string, address: string): void => {
    const at = address.lastIndexOf('@');
    const mailbox = at >= 0 ? address.slice(0, at) : address;
    const host = at >= 0 ? address.slice(at + 1) : '';
    const adl = routes.get(address.toLowerCase()) ?? null;
    // A bare word with no @ is a mailbox with no host; "missing host" renders as NIL.
    out.push(`(${nstring(name || null)} ${nstring(adl)} ${nstring(mailbox || null)} ${nstring(host || null)})`);
  };
  for (const a of addressparser(value)) {
    if (a.group !== undefined) {
      out.push(`(NIL NIL ${istring(a.name)} NIL)`);
      // A member without an address is only a comment ("group: (foo) ;"), not a mailbox.
      for (const g of a.group) if (g.group === undefined && g.address) one(g.name, g.address);
      out.push('(NIL NIL NIL NIL)');
    } else {
      one(a.name, a.address);
    }
  }
  return out.length ? `(${out.join('')})` : null;
}

/**
 * sourceRoutes - the obsolete source routes (RFC 5322 §4.4 obs-route, "<@a,@b:user@host>")
 * by address: addressparser drops them, ENVELOPE reports them as the adl.
 */
function sourceRoutes(value: string): Map<string, string> {
  const routes = new Map<string, string>();
  if (!value.includes('<@')) return routes;
  for (const m of value.matchAll(/<\s*(@[^<>:"]*?)\s*:\s*([^<>\s]+)\s*>/g)) {
    routes.set(m[2]!.toLowerCase(), m[1]!.replace(/\s+/g, ''));
  }
  return routes;
}

/** bodyStructure - BODYSTRUCTURE (extensible) or BODY (basic) of a part tree. */
export function bodyStructure(raw: Buffer, part: Part, extensible: boolean): string {
  const fields = headerFields(raw.subarray(part.headerStart, part.bodyStart));
  const v = (k: string): string | null => headerValue(fields, k);
  const ext = (): string[] => {
    const disp = v('content-disposition');
    let dispStr = 'NIL';
    if (disp) {
      const d = libmime.parseHeaderValue(disp);
      if (d.value) dispStr = `(${istring(d.value.toLowerCase())} ${paramList(d.params ?? {})})`;
    }
    const lang = v('content-language');
    const langStr = lang ? `(${lang.split(',').map((l) => istring(l.trim())).join(' ')})` : 'NIL';
    return [dispStr, langStr, nstring(v('content-location'))];
  };
  if (part.children) {
    const kids = part.children.length ? part.children.map((c) => bodyStructure(raw, c, extensible)).join('') : '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)';
    const items = [kids + ' ' + istring(part.subtype)];
    if (extensible) items.push(paramList(part.params), ...ext());
    return `(${items.join(' ')})`;
  }
  const params = { ...part.params };
  if (part.type === 'text' && !params.charset) params.charset = 'us-ascii';
  const encoding = (v('content-transfer-encoding') ?? '7bit').toLowerCase();
  const size = part.end - part.bodyStart;
  const items = [istring(part.type), istring(part.subtype), paramList(params), nstring(v('content-id')), nstring(v('content-description')), istring(encoding), String(size)];
  if (part.type === 'message' && part.subtype === 'rfc822' && part.message) {
    const m = part.message;
    items.push(envelope(raw.subarray(m.headerStart, m.bodyStart)), bodyStructure(raw, m, extensible), String(countLines(raw, part.bodyStart, part.end)));
  } else if (part.type === 'text') {
    items.push(String(countLines(raw, part.bodyStart, part.end)));
  }
  if (extensible) items.push(nstring(v('content-md5')), ...ext());
  return `(${items.join(' ')})`;
}

function paramList(params: Record<string, string>): string {
  const entries = Object.entries(params);
  if (!entries.length) return 'NIL';
  return `(${entries.map(([k, val]) => `${istring(k)} ${istring(val)}`).join(' ')})`;
}

/**
 * countLines - lines in raw[from, to): its line breaks. A last line without one is not counted:
 * an RFC 5322 line ends in CRLF, and a MIME part's last CRLF belongs to the boundary after it
 * (RFC 2046 §5.1.1), so a one-line part counts 0, as Dovecot counts.
 */
function countLines(raw: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = raw.indexOf(10, from); i >= 0 && i < to; i = raw.indexOf(10, i + 1)) n++;
  return n;
}
