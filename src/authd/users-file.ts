// users file - Dovecot's passwd-file format, one user a line:
//   user:password:uid:gid:gecos:home:shell:extra_fields
// We write `alice@example.test:{ARGON2ID}$argon2id$...::::::` and read any passwd-file line;
// fields after the password are kept as they are; of the extra fields (Dovecot's space-separated
// `key=value` list, the 8th field) we read `mailhost=ADDRESS`: the IPC address of the mailboxd
// that holds this user's mail (issue 18). `#` comments and blank lines are allowed. A malformed line is reported with its number and skipped, never fatal.

import { parseAddress } from '../ipc/address.js';
import { canonicalUser, isSafeUserName } from '../mail/address.js';

export interface UserEntry {
  /** canonical (lower-case) full address */
  user: string;
  /** `{SCHEME}value`, or '' for a user that cannot log in */
  password: string;
  /** IPC address of the user's mailboxd (`mailhost=` extra field), '' = the configured one */
  mailhost: string;
  /** 1-based line number */
  line: number;
}

export interface LineProblem {
  line: number;
  reason: string;
}

/**
 * parseEntries - the data lines of a users or aliases file, in file order: blank lines and
 * `#` comments skipped, a malformed line or a repeated KEY reported by line number (the first
 * of duplicates wins).
 */
export function parseEntries<T extends object>(
  text: string,
  parseLine: (raw: string) => T | { reason: string },
  keyOf: (entry: T) => string,
  noun: string,
): { entries: Array<T & { line: number }>; problems: LineProblem[] } {
  const entries: Array<T & { line: number }> = [];
  const problems: LineProblem[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const r = parseLine(raw);
    if ('reason' in r) {
      problems.push({ line: i + 1, reason: r.reason });
      continue;
    }
    const key = keyOf(r as T);
    if (seen.has(key)) {
      problems.push({ line: i + 1, reason: `duplicate ${noun} ${key} (the first one is used)` });
      continue;
    }
    seen.add(key);
    entries.push({ ...(r as T), line: i + 1 });
  }
  return { entries, problems };
}

/** parseUsers - entries in file order (first of duplicates wins) and the lines skipped. */
export function parseUsers(text: string): { users: UserEntry[]; problems: LineProblem[] } {
  const { entries, problems } = parseEntries(text, parseUserLine, (u) => u.user, 'user');
  return { users: entries, problems };
}

/** parseUserLine - one non-comment line: its user and password, or why it is malformed. */
export function parseUserLine(raw: string): { user: string; password: string; mailhost: string } | { reason: string } {
  const fields = raw.split(':');
  if (fields.length < 2) return { reason: 'expected user:password[:uid:gid:gecos:home:shell:extra]' };
  const user = canonicalUser(fields[0]!);
  if (!isSafeUserName(user)) return { reason: `bad user name ${JSON.stringify(fields[0])} (a full address is expected)` };
  // The extra fields are the rest of the line: an address like socket://10.0.0.4:14103 has colons.
  let mailhost = '';
  for (const f of fields.slice(7).join(':').split(/\s+/)) {
    if (!f.startsWith('mailhost=')) continue;
    mailhost = f.slice('mailhost='.length);
    try {
      parseAddress(mailhost);
    } catch (err) {
      return { reason: `bad mailhost ${JSON.stringify(mailhost.slice(0, 80))}: ${(err as Error).message}` };
    }
  }
  return { user, password: fields[1]!.trim(), mailhost };
}

/** formatUserLine - the line we write for a user. */
export function formatUserLine(user: string, password: string): string {
  return `${user}:${password}::::::`;
}

/** lineUser - the canonical user a raw line is about, or null (comment, blank, malformed). */
function lineUser(raw: string): string | null {
  if (raw.trim() === '' || raw.trimStart().startsWith('#')) return null;
  const r = parseUserLine(raw.replace(/\r$/, ''));
  return 'user' in r ? r.user : null;
}

/** setUser - the file text with USER's line replaced (or appended); other lines untouched. */
export function setUser(text: string, user: string, password: string): string {
  const lines = splitLines(text);
  const line = formatUserLine(user, password);
  const at = lines.findIndex((l) => lineUser(l) === user);
  if (at >= 0) {
    // A new password keeps the fields after it (uid ... extra fields, e.g. mailhost=).
    const rest = lines[at]!.replace(/\r$/, '').split(':').slice(2);
    lines[at] = rest.length >= 6 ? `${user}:${password}:${rest.join(':')}` : line;
  } else lines.push(line);
  return lines.join('\n') + '\n';
}

/** deleteUser - the file text without USER's lines; null when USER was not there. */
export function deleteUser(text: string, user: string): string | null {
  const lines = splitLines(text);
  const kept = lines.filter((l) => lineUser(l) !== user);
  if (kept.length === lines.length) return null;
  return kept.length ? kept.join('\n') + '\n' : '';
}

/** splitLines - lines of a file without the final empty one. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}
