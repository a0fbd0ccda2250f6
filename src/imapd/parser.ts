// The IMAP command syntax (RFC 9051 §9): a command's text and literals as tokens - atoms,
// strings (quoted or literal) and parenthesized lists - and a cursor the handlers read their
// arguments with. Everything the client sends is checked here, at the boundary: a malformed
// command is a ParseError (the session answers BAD), never an exception elsewhere.
//
// One liberty, as every server takes: inside an atom, `[` ... `]` is read as one piece with its
// spaces and parentheses, so `BODY[HEADER.FIELDS (FROM TO)]<0.100>` is a single atom.

export class ParseError extends Error {}

export type Token =
  | { t: 'atom'; v: string }
  /** A quoted string or a literal; `bytes` keeps a literal's exact octets (APPEND); `binary` marks a literal8 (`~{N}`, RFC 3516). */
  | { t: 'string'; v: string; bytes?: Buffer; binary?: boolean }
  | { t: 'list'; v: Token[] };

const MAX_DEPTH = 16;
const SECTION_PREFIX = /^(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE|RFC822)$/i;

/** tokenize - the parts a CommandReader returned (text, literal, text, ...) as tokens. */
export function tokenize(parts: Array<string | Buffer>): Token[] {
  const root: Token[] = [];
  const stack: Token[][] = [root];
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p]!;
    if (typeof part !== 'string') continue; // consumed by the `{N}` before it
    const s = part;
    let i = 0;
    while (i < s.length) {
      const c = s[i]!;
      const top = stack[stack.length - 1]!;
      if (c === ' ') {
        i++;
      } else if (c === '(') {
        if (stack.length > MAX_DEPTH) throw new ParseError('Lists nested too deep');
        const list: Token[] = [];
        top.push({ t: 'list', v: list });
        stack.push(list);
        i++;
      } else if (c === ')') {
        if (stack.length === 1) throw new ParseError('Unbalanced parenthesis');
        stack.pop();
        i++;
      } else if (c === '"') {
        let out = '';
        i++;
        for (;;) {
          if (i >= s.length) throw new ParseError('Unterminated quoted string');
          const q = s[i]!;
          if (q === '"') break;
          if (q === '\\') {
            const n = s[i + 1];
            if (n !== '"' && n !== '\\') throw new ParseError('Bad escape in quoted string');
            out += n;
            i += 2;
          } else {
            out += q;
            i++;
          }
        }
        i++;
        top.push({ t: 'string', v: out });
      } else if (c === '{' || (c === '~' && s[i + 1] === '{')) {
        const binary = c === '~';
        const m = /^\{([0-9]+)\+?\}$/.exec(s.slice(binary ? i + 1 : i));
        const lit = parts[p + 1];
        if (!m || !Buffer.isBuffer(lit)) throw new ParseError('Bad literal');
        top.push(binary ? { t: 'string', v: lit.toString('utf8'), bytes: lit, binary } : { t: 'string', v: lit.toString('utf8'), bytes: lit });
        i = s.length;
      } else {
        const start = i;
        let depth = 0;
        while (i < s.length) {
          const a = s[i]!;
          // Only a fetch attribute's section may hold spaces and parentheses.
          if (a === '[' && (depth > 0 || SECTION_PREFIX.test(s.slice(start, i)))) depth++;
          else if (a === ']' && depth > 0) depth--;
          else if (depth === 0 && (a === ' ' || a === '(' || a === ')' || a === '"' || a === '{')) break;
          else if (a.charCodeAt(0) < 0x20 || a === '\x7f') throw new ParseError('Control character in command');
          i++;
        }
        if (depth > 0) throw new ParseError('Unbalanced bracket');
        top.push({ t: 'atom', v: s.slice(start, i) });
      }
    }
  }
  if (stack.length !== 1) throw new ParseError('Unbalanced parenthesis');
  return root;
}

/** Args - reads one command's arguments in order; every getter throws ParseError on a mismatch. */
export class Args {
  private i = 0;
  constructor(private readonly tokens: Token[]) {}

  get done(): boolean {
    return this.i >= this.tokens.length;
  }

  peek(): Token | undefined {
    return this.tokens[this.i];
  }

  next(what: string): Token {
    const t = this.tokens[this.i++];
    if (!t) throw new ParseError(`Missing ${what}`);
    return t;
  }

  atom(what = 'argument'): string {
    const t = this.next(what);
    if (t.t !== 'atom') throw new ParseError(`Expected ${what}`);
    return t.v;
  }

  /** astring - an atom or a string (RFC 9051 astring). */
  astring(what = 'argument'): string {
    const t = this.next(what);
    if (t.t === 'list') throw new ParseError(`Expected ${what}`);
    return t.v;
  }

  /** mailbox - an astring naming a mailbox ("INBOX" in any case is INBOX). */
  mailbox(): string {
    const name = this.astring('mailbox name');
    return name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
  }

  list(what = 'list'): Token[] {
    const t = this.next(what);
    if (t.t !== 'list') throw new ParseError(`Expected ${what}`);
    return t.v;
  }

  /** optionalList - a parenthesized list if one comes next. */
  optionalList(): Token[] | null {
    const t = this.peek();
    if (t?.t !== 'list') return null;
    this.i++;
    return t.v;
  }

  number(what = 'number'): number {
    const v = this.atom(what);
    return parseNumber(v, what);
  }

  end(): void {
    if (!this.done) throw new ParseError('Too many arguments');
  }
}

/** parseNumber - an RFC 9051 number (0 .. 2^63-1 in the grammar; we take safe integers). */
export function parseNumber(v: string, what = 'number'): number {
  if (!/^[0-9]{1,16}$/.test(v)) throw new ParseError(`Bad ${what}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new ParseError(`Bad ${what}`);
  return n;
}

/** atomsOf - a list of atoms (flags, capability names), or ParseError. */
export function atomsOf(list: Token[], what = 'flag'): string[] {
  return list.map((t) => {
    if (t.t !== 'atom') throw new ParseError(`Expected ${what}`);
    return t.v;
  });
}

/** splitTagAndCommand - the tag and the command name from a command's first text, or null. */
export function splitTagAndCommand(tokens: Token[]): { tag: string; name: string; rest: Token[] } | null {
  const tag = tokens[0];
  if (!tag || tag.t !== 'atom' || !/^[\x21-\x7e]+$/.test(tag.v) || /[+(){%*"\\\]]/.test(tag.v)) return null;
  const name = tokens[1];
  if (!name || name.t !== 'atom') return { tag: tag.v, name: '', rest: [] };
  return { tag: tag.v, name: name.v.toUpperCase(), rest: tokens.slice(2) };
}
