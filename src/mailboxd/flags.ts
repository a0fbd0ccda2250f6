// Flags: IMAP names in the IPC, Maildir letters in file names (`:2,FRS`), keywords as the
// letters a..z of Dovecot's `dovecot-keywords` table (`0 $Label1` lines), so Dovecot and
// mailboxd agree on what a file's flags mean.

import { readFileSync } from 'node:fs';
import path from 'node:path';

import { writeFileAtomic } from '../shared/durable.js';

const SYSTEM: Record<string, string> = { '\\draft': 'D', '\\flagged': 'F', '\\answered': 'R', '\\seen': 'S', '\\deleted': 'T' };
const LETTER_NAME: Record<string, string> = { D: '\\Draft', F: '\\Flagged', R: '\\Answered', S: '\\Seen', T: '\\Deleted', P: '$Forwarded' };
const ATOM_RE = /^[^\s(){%*"\\\]\x00-\x1f\x7f]{1,100}$/;
const MAX_KEYWORDS = 26;

export class FlagError extends Error {}

/** Keywords - one folder's keyword table, read from and written to `dovecot-keywords`. */
export class Keywords {
  private names: string[] = [];
  private readonly file: string;

  constructor(dir: string) {
    this.file = path.join(dir, 'dovecot-keywords');
    this.reload();
  }

  /** reload - read the table again (Dovecot may have added keywords). */
  reload(): void {
    const names: string[] = [];
    try {
      for (const line of readFileSync(this.file, 'utf8').split('\n')) {
        const m = /^(\d+) (.+)$/.exec(line);
        if (m && Number(m[1]) < MAX_KEYWORDS) names[Number(m[1])] = m[2]!;
      }
    } catch {
      // no keywords yet
    }
    this.names = names;
  }

  /** signature - the table as one string: answers built from it are stale when it differs. */
  signature(): string {
    return this.names.join('\n');
  }

  nameOf(letter: string): string | undefined {
    return this.names[letter.charCodeAt(0) - 0x61];
  }

  /** letterFor - the letter of keyword NAME; a new one is added (and saved) when `create`. */
  async letterFor(name: string, create: boolean): Promise<string | null> {
    const lower = name.toLowerCase();
    const i = this.names.findIndex((n) => n !== undefined && n.toLowerCase() === lower);
    if (i >= 0) return String.fromCharCode(0x61 + i);
    if (!create) return null;
    this.reload();
    let free = -1;
    for (let j = 0; j < MAX_KEYWORDS; j++) if (this.names[j] === undefined) { free = j; break; }
    if (free < 0) throw new FlagError('too many keywords');
    this.names[free] = name;
    const text = this.names.map((n, j) => (n === undefined ? '' : `${j} ${n}\n`)).join('');
    await writeFileAtomic(this.file, text);
    return String.fromCharCode(0x61 + free);
  }
}

/** parseFlagList - IMAP flag names to their parts; throws FlagError for a bad one. */
export function parseFlagList(text: string): { system: string; keywords: string[] } {
  let system = '';
  const keywords: string[] = [];
  for (const f of text.split(/\s+/)) {
    if (f === '') continue;
    if (f.startsWith('\\')) {
      const letter = SYSTEM[f.toLowerCase()];
      if (!letter) throw new FlagError(`bad flag ${f}`);
      if (!system.includes(letter)) system += letter;
    } else if (f.toLowerCase() === '$forwarded') {
      if (!system.includes('P')) system += 'P';
    } else {
      if (!ATOM_RE.test(f)) throw new FlagError(`bad flag ${f}`);
      if (!keywords.some((k) => k.toLowerCase() === f.toLowerCase())) keywords.push(f);
    }
  }
  return { system, keywords };
}

/** flagNames - the IMAP names for a file's Maildir letters. */
export function flagNames(letters: string, keywords: Keywords): string {
  if (letters === '') return '';
  const out: string[] = [];
  for (const l of letters) {
    const n = l >= 'a' && l <= 'z' ? keywords.nameOf(l) : LETTER_NAME[l];
    if (n) out.push(n);
  }
  return out.join(' ');
}

/** sortLetters - Maildir wants the letters in ASCII order, each once. */
export function sortLetters(letters: string): string {
  return [...new Set(letters)].sort().join('');
}
