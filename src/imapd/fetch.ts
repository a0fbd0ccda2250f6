// FETCH: the data items a client asks for (RFC 9051 §6.4.5) and how each is rendered.

import { flagList, formatInternalDate, literalHeader } from './encode.js';
import { type Part, type Section, binaryBytes, bodyStructure, envelope, parseSection, sectionBytes } from './mime.js';
import { ParseError, type Token, parseNumber } from './parser.js';
import type { MessageMeta } from './store.js';

export type FetchItem =
  | { kind: 'UID' | 'FLAGS' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY' | 'MODSEQ' }
  | { kind: 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' }
  | { kind: 'section'; peek: boolean; section: Section; spec: string; partial: [number, number] | null }
  /** BINARY[path]<partial>, BINARY.PEEK, BINARY.SIZE (RFC 3516). */
  | { kind: 'binary'; peek: boolean; size: boolean; path: number[]; spec: string; partial: [number, number] | null };

export interface FetchRequest {
  items: FetchItem[];
  /** Raw bytes are needed (any body part, ENVELOPE, BODYSTRUCTURE). */
  needsRaw: boolean;
  /** The part tree is needed (BODYSTRUCTURE, BODY, a numbered section). */
  needsStructure: boolean;
  /** A non-PEEK body item: the message becomes \Seen. */
  setsSeen: boolean;
}

const MACROS: Record<string, string[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};

const SIMPLE = new Set(['UID', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'MODSEQ', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT']);

/** parseFetchItems - a FETCH's item argument: a macro, one item, or a list of items. */
export function parseFetchItems(tok: Token): FetchRequest {
  const atoms: string[] = [];
  if (tok.t === 'list') {
    for (const t of tok.v) {
      if (t.t !== 'atom') throw new ParseError('Bad fetch item');
      atoms.push(t.v);
    }
    if (!atoms.length) throw new ParseError('Empty fetch item list');
  } else if (tok.t === 'atom') {
    const macro = MACROS[tok.v.toUpperCase()];
    if (macro) atoms.push(...macro);
    else atoms.push(tok.v);
  } else {
    throw new ParseError('Bad fetch item');
  }
  const items = atoms.map(parseItem);
  const needsStructure = items.some((i) => i.kind === 'BODYSTRUCTURE' || i.kind === 'BODY' || (i.kind === 'section' && i.section.path.length > 0) || (i.kind === 'binary' && i.path.length > 0));
  const needsRaw = needsStructure || items.some((i) => i.kind === 'section' || i.kind === 'binary' || i.kind === 'ENVELOPE' || (i.kind.startsWith('RFC822') && i.kind !== 'RFC822.SIZE'));
  const setsSeen = items.some((i) => ((i.kind === 'section' || i.kind === 'binary') && !i.peek && !(i.kind === 'binary' && i.size)) || i.kind === 'RFC822' || i.kind === 'RFC822.TEXT');
  return { items, needsRaw, needsStructure, setsSeen };
}

function parseItem(atom: string): FetchItem {
  const up = atom.toUpperCase();
  if (SIMPLE.has(up)) return { kind: up as 'UID' };
  const b = /^(BINARY|BINARY\.PEEK|BINARY\.SIZE)\[([0-9.]*)\](?:<([0-9]+)\.([0-9]+)>)?$/i.exec(atom);
  if (b) {
    const path = b[2] ? b[2].split('.').map((n) => parseNumber(n, 'part number')) : [];
    if (path.some((n) => n < 1)) throw new ParseError('Bad part number');
    const kw = b[1]!.toUpperCase();
    const size = kw === 'BINARY.SIZE';
    if (size && b[3] !== undefined) throw new ParseError('BINARY.SIZE takes no partial');
    const partial: [number, number] | null = b[3] !== undefined ? [parseNumber(b[3]), parseNumber(b[4]!)] : null;
    if (partial && partial[1] === 0) throw new ParseError('Partial length must be positive');
    return { kind: 'binary', peek: kw === 'BINARY.PEEK', size, path, spec: b[2]!, partial };
  }
  const m = /^(BODY|BODY\.PEEK)\[([^\]]*)\](?:<([0-9]+)\.([0-9]+)>)?$/i.exec(atom);
  if (!m) throw new ParseError(`Unknown fetch item ${atom.slice(0, 50)}`);
  const section = parseSection(m[2]!);
  const partial: [number, number] | null = m[3] !== undefined ? [parseNumber(m[3]), parseNumber(m[4]!)] : null;
  if (partial && partial[1] === 0) throw new ParseError('Partial length must be positive');
  return { kind: 'section', peek: m[1]!.length > 4, section, spec: m[2]!.toUpperCase(), partial };
}

const EMPTY = Buffer.alloc(0);

/** The message data FETCH renders from. */
export interface FetchSource {
  seq: number;
  meta: MessageMeta;
  raw: Buffer | null;
  structure: Part | null;
}

/**
 * renderFetch - one `* N FETCH (...)` response as pieces to write (strings and raw buffers),
 * so message bytes go out without being copied into a string.
 */
export function renderFetch(req: FetchRequest, src: FetchSource, opts: { uid: boolean; modseq: boolean }): Array<string | Buffer> {
  const out: Array<string | Buffer> = [`* ${src.seq} FETCH (`];
  let count = 0;
  const addPlain = (s: string): void => {
    out.push(count++ > 0 ? ' ' + s : s);
  };
  const addData = (label: string, data: Buffer, binary = false): void => {
    out.push(`${count++ > 0 ? ' ' : ''}${label} ${binary ? '~' : ''}${literalHeader(data.length)}`, data);
  };
  const raw = src.raw ?? EMPTY;
  let hasUid = false;
  let hasModseq = false;
  for (const i of req.items) {
    if (i.kind === 'UID') hasUid = true;
    else if (i.kind === 'MODSEQ') hasModseq = true;
  }
  if (opts.uid && !hasUid) addPlain(`UID ${src.meta.uid}`);
  for (const item of req.items) {
    switch (item.kind) {
      case 'UID':
        addPlain(`UID ${src.meta.uid}`);
        break;
      case 'FLAGS':
        addPlain(`FLAGS ${flagList(src.meta.flags)}`);
        break;
      case 'INTERNALDATE':
        addPlain(`INTERNALDATE ${formatInternalDate(src.meta.internalDate)}`);
        break;
      case 'RFC822.SIZE':
        addPlain(`RFC822.SIZE ${src.raw ? src.raw.length : src.meta.size}`);
        break;
      case 'MODSEQ':
        addPlain(`MODSEQ (${src.meta.modseq})`);
        break;
      case 'ENVELOPE':
        addPlain(`ENVELOPE ${envelope(headerOf(raw, src.structure))}`);
        break;
      case 'BODYSTRUCTURE':
        addPlain(`BODYSTRUCTURE ${bodyStructure(raw, src.structure!, true)}`);
        break;
      case 'BODY':
        addPlain(`BODY ${bodyStructure(raw, src.structure!, false)}`);
        break;
      case 'RFC822':
        addData('RFC822', raw);
        break;
      case 'RFC822.HEADER':
        addData('RFC822.HEADER', sectionBytes(raw, src.structure, { path: [], text: 'HEADER', fields: [] }));
        break;
      case 'RFC822.TEXT':
        addData('RFC822.TEXT', sectionBytes(raw, src.structure, { path: [], text: 'TEXT', fields: [] }));
        break;
      case 'section': {
        let data = sectionBytes(raw, src.structure, item.section);
        let label = `BODY[${item.spec}]`;
        if (item.partial) {
          const [origin, count] = item.partial;
          data = data.subarray(Math.min(origin, data.length), Math.min(origin + count, data.length));
          label += `<${origin}>`;
        }
        addData(label, data);
        break;
      }
      case 'binary': {
        let data = binaryBytes(raw, src.structure, item.path);
        if (item.size) {
          addPlain(`BINARY.SIZE[${item.spec}] ${data.length}`);
          break;
        }
        let label = `BINARY[${item.spec}]`;
        if (item.partial) {
          const [origin, count] = item.partial;
          data = data.subarray(Math.min(origin, data.length), Math.min(origin + count, data.length));
          label += `<${origin}>`;
        }
        addData(label, data, needsLiteral8(data));
        break;
      }
    }
  }
  if (opts.modseq && !hasModseq) addPlain(`MODSEQ (${src.meta.modseq})`);
  out.push(')\r\n');
  return out;
}

function headerOf(raw: Buffer, structure: Part | null): Buffer {
  return sectionBytes(raw, structure, { path: [], text: 'HEADER', fields: [] });
}

/**
 * needsLiteral8 - decoded data that is not text as a literal carries it (a NUL, a bare CR or
 * LF) goes out as literal8 `~{N}` (RFC 3516 §4.2), as Dovecot sends it.
 */
function needsLiteral8(data: Buffer): boolean {
  if (data.includes(0)) return true;
  for (let i = data.indexOf(13); i >= 0; i = data.indexOf(13, i + 1)) if (data[i + 1] !== 10) return true;
  for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, i + 1)) if (i === 0 || data[i - 1] !== 13) return true;
  return false;
}
