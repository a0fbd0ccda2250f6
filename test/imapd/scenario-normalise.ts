// The "canonical form" of IMAP responses, so two servers' answers to one command can be compared
// where RFC 9051 (and RFC 3501 for IMAP4rev1 sessions) leaves them no choice, and only there.
//
// What is left to the server, and so normalised away:
// - Human text after OK/NO/BAD/BYE (resp-text), and untagged OK without a response code.
// - Capabilities (each server its own; untagged or as a response code), ID data, the `+`
//   continuation text, and whether a literal is refused before or after its `+`.
// - Optional response codes (OPTIONAL_CODES): RFC 5530's on a NO, HIGHESTMODSEQ in SELECT
//   without CONDSTORE enabled, the charset list of BADCHARSET.
// - Which form a string takes (atom, quoted, literal) where the grammar allows either
//   (mailbox names are astrings; nstrings in FETCH data); the case of atoms (response names,
//   flags, fetch item names and attributes are case-insensitive).
// - Order: untagged responses within one command's answer, fetch items within a FETCH
//   response (and FETCH data for one message split over several responses), flags in a flag
//   list, attributes in LIST, numbers in SEARCH, items in STATUS.
// - Sequence-set spelling (1:3 or 1,2,3) in ESEARCH and COPYUID; the order of EXPUNGE
//   responses removing the same messages (each run of EXPUNGEs becomes the set it removed);
//   FETCH data about a message the same answer then expunges.
// - Extra data a server may add: UID in a FETCH response the command did not ask it in,
//   \HasChildren/\HasNoChildren in LSUB, RECENT counts outside SELECT/EXAMINE (when one is
//   due is loosely defined in RFC 3501 and RFC 9051 has none), and keywords in FLAGS and
//   PERMANENTFLAGS (which ones a mailbox lists is the server's choice), with the FLAGS and
//   PERMANENTFLAGS that announce new ones outside SELECT/EXAMINE.
// - Server-chosen values: UIDVALIDITY becomes V1, V2... in order of first appearance (so a
//   folder keeps one value everywhere it is shown), mod-sequences become <modseq>.
// Everything else must match: tagged status and the codes that are left, EXISTS/EXPUNGE
// counts, RECENT in SELECT/EXAMINE, FETCH data byte for byte (\Recent included), SEARCH and
// ESEARCH hits, COPYUID/APPENDUID UIDs, UIDNEXT, UNSEEN, LIST names and attributes, STATUS.

export type Tok = { t: 'atom'; v: string } | { t: 'str'; v: string } | { t: 'list'; v: Tok[] };

/** tokenize - IMAP response data (latin1: one char per byte) into atoms, strings and lists. */
export function tokenize(s: string): Tok[] {
  let i = 0;
  const parse = (close: string | null): Tok[] => {
    const out: Tok[] = [];
    for (;;) {
      while (s[i] === ' ') i++;
      if (i >= s.length) {
        if (close) throw new Error(`unclosed list in ${JSON.stringify(s.slice(0, 200))}`);
        return out;
      }
      const c = s[i]!;
      if (c === close) {
        i++;
        return out;
      }
      if (c === '(') {
        i++;
        out.push({ t: 'list', v: parse(')') });
      } else if (c === '"') {
        let v = '';
        for (i++; s[i] !== '"'; i++) {
          if (i >= s.length) throw new Error('unclosed quoted string');
          if (s[i] === '\\') i++;
          v += s[i];
        }
        i++;
        out.push({ t: 'str', v });
      } else if (c === '{') {
        const m = /^\{([0-9]+)\}\r\n/.exec(s.slice(i, i + 30));
        if (!m) throw new Error(`bad literal at ${JSON.stringify(s.slice(i, i + 30))}`);
        i += m[0].length;
        out.push({ t: 'str', v: s.slice(i, i + Number(m[1])) });
        i += Number(m[1]);
      } else {
        // An atom; BODY[HEADER.FIELDS (A B)]<0> is one, brackets and all.
        let v = '';
        let depth = 0;
        while (i < s.length) {
          const d = s[i]!;
          if (d === '[') depth++;
          else if (d === ']') depth--;
          else if (depth === 0 && (d === ' ' || d === '(' || d === ')' || d === '"')) break;
          v += d;
          i++;
        }
        out.push({ t: 'atom', v });
      }
    }
  };
  return parse(null);
}

/**
 * Response codes a server may or may not send: capabilities (its own), HIGHESTMODSEQ in SELECT
 * without CONDSTORE enabled, and the RFC 5530 codes, which RFC 9051 lets a server use or not
 * on a NO (TRYCREATE, BADCHARSET, READ-ONLY/READ-WRITE, UIDPLUS codes are compared).
 */
const OPTIONAL_CODES = new Set([
  'CAPABILITY',
  'HIGHESTMODSEQ',
  'ALREADYEXISTS',
  'NONEXISTENT',
  'CANNOT',
  'INUSE',
  'NOPERM',
  'LIMIT',
  'CLIENTBUG',
  'SERVERBUG',
  'UNAVAILABLE',
  'AUTHENTICATIONFAILED',
  'EXPUNGEISSUED',
  'CONTACTADMIN',
  'PARSE',
  'OVERQUOTA',
]);

/** Per-server state of the normalisation: the UIDVALIDITY placeholders given so far. */
export class Normaliser {
  private readonly validities = new Map<string, string>();

  uidvalidity(v: string): string {
    let p = this.validities.get(v);
    if (!p) {
      p = `V${this.validities.size + 1}`;
      this.validities.set(v, p);
    }
    return p;
  }

  /**
   * step - the responses to one COMMAND (untagged ones, then the tagged one or a continuation)
   * in canonical form: untagged sorted, the completion last.
   */
  step(responses: string[], command = ''): string[] {
    const untagged: string[] = [];
    const completion: string[] = [];
    // FETCH data by message number; an EXPUNGE renumbers it and drops the expunged message's.
    let fetches = new Map<number, Map<string, string>>();
    const expunges: number[] = [];
    const lastOf = new Map<string, string>();
    const selecting = /^(SELECT|EXAMINE) /i.test(command);
    const keepUid = /\bUID\b/i.test(command);
    for (const r of responses) {
      const sp = r.indexOf(' ');
      const head = sp < 0 ? r : r.slice(0, sp);
      const rest = sp < 0 ? '' : r.slice(sp + 1);
      if (head === '+') {
        completion.push('+');
        continue;
      }
      if (head !== '*') {
        completion.push(`${head} ${this.status(rest)}`);
        continue;
      }
      const m = /^([0-9]+) ([A-Za-z]+)(?: |$)(.*)$/s.exec(rest);
      if (m) {
        const n = Number(m[1]);
        const word = m[2]!.toUpperCase();
        if (word === 'EXPUNGE') {
          expunges.push(n);
          const renumbered = new Map<number, Map<string, string>>();
          for (const [k, v] of fetches) if (k !== n) renumbered.set(k > n ? k - 1 : k, v);
          fetches = renumbered;
        } else if (word === 'FETCH') {
          this.fetch(n, m[3]!, fetches, keepUid);
        } else if (word === 'RECENT') {
          // When an unsolicited RECENT is due is loosely defined (RFC 3501 §7.3.2; RFC 9051
          // has none): the counts are compared where SELECT and EXAMINE must send them.
          if (selecting) untagged.push(`* ${n} ${word}`);
        } else {
          untagged.push(`* ${n} ${word}`);
        }
        continue;
      }
      const word = (/^[A-Za-z]+/.exec(rest)?.[0] ?? '').toUpperCase();
      const args = rest.slice(word.length).trimStart();
      if (['OK', 'NO', 'BAD', 'BYE', 'PREAUTH'].includes(word)) {
        const s = this.status(rest);
        if (word === 'OK' && s === 'OK') continue;
        if (s.startsWith('OK [PERMANENTFLAGS ')) {
          if (selecting) lastOf.set('PERMANENTFLAGS', `* ${s}`);
        } else {
          untagged.push(`* ${s}`);
        }
      } else if (word === 'CAPABILITY') {
        // Capabilities are the server's own; shown untagged or as a response code.
      } else if (word === 'ID') {
        untagged.push(`* ${word}`);
      } else if (word === 'FLAGS') {
        // Keywords left out (see systemFlags), a FLAGS outside SELECT says nothing more.
        if (selecting) lastOf.set('FLAGS', `* FLAGS ${systemFlags(tokenize(args)[0]!)}`);
      } else if (word === 'LIST' || word === 'LSUB') {
        const [attrs, delim, name, ...ext] = tokenize(args);
        // LSUB (RFC 3501 §6.3.9) need not say whether a folder has children.
        const a = word === 'LSUB' && attrs?.t === 'list' ? { t: 'list' as const, v: attrs.v.filter((x) => !/^\\Has(No)?Children$/i.test(text(x))) } : attrs!;
        untagged.push(`* ${word} ${flags(a)} ${canon(delim!)} ${JSON.stringify(text(name!))}${ext.map((t) => ' ' + canon(t)).join('')}`);
      } else if (word === 'STATUS') {
        const [name, items] = tokenize(args);
        untagged.push(`* STATUS ${JSON.stringify(text(name!))} ${this.pairs(items as Tok & { t: 'list' }).join(' ')}`);
      } else if (word === 'SEARCH') {
        const toks = tokenize(args);
        const nums = toks.filter((t) => t.t === 'atom').map((t) => Number(t.v)).sort((a, b) => a - b);
        const mod = toks.some((t) => t.t === 'list') ? ' (MODSEQ <modseq>)' : '';
        untagged.push(`* SEARCH${nums.map((x) => ' ' + x).join('')}${mod}`);
      } else if (word === 'ESEARCH') {
        untagged.push(`* ESEARCH ${this.esearch(tokenize(args))}`);
      } else {
        untagged.push(`* ${word}${args ? ' ' + tokenize(args).map(canon).join(' ') : ''}`);
      }
    }
    if (expunges.length) untagged.push(`* EXPUNGED ${expungedSet(expunges)}`);
    for (const [n, items] of fetches) {
      if (!items.size) continue;
      const sorted = [...items.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      untagged.push(`* ${n} FETCH (${sorted.map(([k, v]) => `${k} ${v}`).join(' ')})`);
    }
    untagged.push(...lastOf.values());
    return [...untagged.sort(), ...completion];
  }

  /** status - `OK [CODE args] text` as `OK [CODE args]`, text dropped, free values replaced. */
  private status(rest: string): string {
    const m = /^([A-Za-z]+)(?: (?:\[([^\]]*)\])?.*)?$/s.exec(rest);
    if (!m) return rest;
    const word = m[1]!.toUpperCase();
    if (m[2] === undefined) return word;
    const code = m[2];
    const sp = code.indexOf(' ');
    const name = (sp < 0 ? code : code.slice(0, sp)).toUpperCase();
    const args = sp < 0 ? '' : code.slice(sp + 1);
    if (OPTIONAL_CODES.has(name)) return word;
    let out: string;
    switch (name) {
      case 'BADCHARSET':
        // The list of supported charsets is optional (RFC 9051 §7.1).
        out = name;
        break;
      case 'UIDVALIDITY':
        out = `${name} ${this.uidvalidity(args)}`;
        break;
      case 'PERMANENTFLAGS':
        out = `${name} ${systemFlags(tokenize(args)[0]!)}`;
        break;
      case 'APPENDUID': {
        const [v, uid] = args.split(' ');
        out = `${name} ${this.uidvalidity(v!)} ${canonSet(uid!)}`;
        break;
      }
      case 'COPYUID': {
        const [v, from, to] = args.split(' ');
        out = `${name} ${this.uidvalidity(v!)} ${canonSet(from!)} ${canonSet(to!)}`;
        break;
      }
      default:
        out = args ? `${name} ${tokenize(args).map(canon).join(' ')}` : name;
    }
    return `${word} [${out}]`;
  }

  /** fetch - FETCH data items merged per message (a server may split them over responses). */
  private fetch(n: number, args: string, into: Map<number, Map<string, string>>, keepUid: boolean): void {
    const list = tokenize(args)[0];
    if (list?.t !== 'list') throw new Error(`bad FETCH data ${args.slice(0, 100)}`);
    let items = into.get(n);
    if (!items) into.set(n, (items = new Map()));
    for (let i = 0; i + 1 < list.v.length; i += 2) {
      const key = upper(list.v[i]!);
      const val = list.v[i + 1]!;
      // A server may add UID to any FETCH response; it is compared where the command asks.
      if (key === 'UID' && !keepUid) continue;
      items.set(key, key === 'FLAGS' ? flags(val) : key === 'MODSEQ' ? '(<modseq>)' : canon(val));
    }
  }

  private pairs(list: Tok & { t: 'list' }): string[] {
    const out: string[] = [];
    for (let i = 0; i + 1 < list.v.length; i += 2) {
      const key = upper(list.v[i]!);
      const v = text(list.v[i + 1]!);
      out.push(`${key} ${key === 'UIDVALIDITY' ? this.uidvalidity(v) : key === 'HIGHESTMODSEQ' ? '<modseq>' : v}`);
    }
    return out.sort();
  }

  private esearch(toks: Tok[]): string {
    const out: string[] = [];
    let i = 0;
    if (toks[0]?.t === 'list') out.push(canon(toks[i++]!));
    if (toks[i]?.t === 'atom' && upper(toks[i]!) === 'UID') out.push(upper(toks[i++]!));
    const items: string[] = [];
    for (; i + 1 < toks.length; i += 2) {
      const key = upper(toks[i]!);
      const v = text(toks[i + 1]!);
      items.push(`${key} ${key === 'ALL' ? canonSet(v) : key === 'MODSEQ' ? '<modseq>' : v}`);
    }
    return [...out, ...items.sort()].join(' ');
  }
}

/** text - an atom's or string's text ('' for a list). */
function text(t: Tok): string {
  return t.t === 'list' ? '' : t.v;
}

function upper(t: Tok): string {
  return text(t).toUpperCase();
}

/** canon - a token in canonical form: atoms upper-cased, strings quoted, lists as lists. */
export function canon(t: Tok): string {
  if (t.t === 'atom') return t.v.toUpperCase();
  if (t.t === 'str') return JSON.stringify(t.v);
  return `(${t.v.map(canon).join(' ')})`;
}

/** flags - a flag (or attribute) list: case and order do not matter. */
function flags(t: Tok): string {
  if (t.t !== 'list') return canon(t);
  return `(${t.v.map(canon).sort().join(' ')})`;
}

/**
 * systemFlags - a FLAGS or PERMANENTFLAGS list without keywords: which keywords a mailbox
 * lists is the server's choice (Dovecot keeps every keyword ever stored, and adds one a SEARCH
 * names; imapd lists those on messages), and `\*` says any keyword may be created.
 */
function systemFlags(t: Tok): string {
  if (t.t !== 'list') return canon(t);
  return flags({ t: 'list', v: t.v.filter((f) => text(f).startsWith('\\')) });
}

/** canonSet - a sequence set as ascending single numbers and ranges, however it was spelled. */
export function canonSet(set: string): string {
  const nums: number[] = [];
  for (const part of set.split(',')) {
    const [a, b] = part.split(':').map(Number) as [number, number | undefined];
    const lo = Math.min(a, b ?? a);
    const hi = Math.max(a, b ?? a);
    if (hi - lo > 100_000) throw new Error(`set too large: ${set}`);
    for (let x = lo; x <= hi; x++) nums.push(x);
  }
  return formatRuns([...new Set(nums)].sort((x, y) => x - y));
}

function formatRuns(nums: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < nums.length; ) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    out.push(i === j ? String(nums[i]) : `${nums[i]}:${nums[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/**
 * expungedSet - the message numbers (as they were before) that a run of EXPUNGE responses
 * removed: `3 EXPUNGE, 2 EXPUNGE` and `2 EXPUNGE, 2 EXPUNGE` both remove 2 and 3.
 */
export function expungedSet(seqs: number[]): string {
  // Replay the removals on the numbers they started from.
  const max = Math.max(...seqs) + seqs.length;
  const current = Array.from({ length: max }, (_, i) => i + 1);
  const removed: number[] = [];
  for (const s of seqs) removed.push(...current.splice(s - 1, 1));
  return formatRuns(removed.sort((a, b) => a - b));
}
