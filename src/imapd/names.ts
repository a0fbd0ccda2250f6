// Mailbox names and LIST patterns - the isolation boundary of imapd.
//
// Every name a client sends is a path inside that user's own folder tree and nothing else:
// there is no other namespace (no `~user`, no `#shared`, no `#public`), no absolute or
// relative path syntax (`/x`, `../x`, `./x`), no empty level, no control character and no
// wildcard in a name. Anything else is refused here, before the store sees it; the store in
// turn only ever addresses the logged-in user's mail. LIST patterns are matched against the
// user's own folder list, so `*` or `%` can only ever find that user's folders.

import utf7 from 'utf7';

export class BadNameError extends Error {}

/** checkName - the name as the store should see it (INBOX upper-cased), or BadNameError. */
export function checkName(name: string, delimiter: string): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name === '') throw new BadNameError('Empty mailbox name');
  if (Buffer.byteLength(name) > 512) throw new BadNameError('Mailbox name too long');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f%*\\]/.test(name)) throw new BadNameError('Invalid character in mailbox name');
  if (name.startsWith('~') || name.startsWith('#')) throw new BadNameError('No other namespaces here');
  const levels = name.split(delimiter);
  if (levels.length > 16) throw new BadNameError('Mailbox hierarchy too deep');
  for (const level of levels) {
    if (level === '') throw new BadNameError('Empty level in mailbox name');
    if (level === '.' || level === '..') throw new BadNameError('Invalid level in mailbox name');
    if (level.startsWith('.')) throw new BadNameError('A mailbox name level may not start with "."');
    if (level.includes('/')) throw new BadNameError('"/" is not allowed in mailbox names');
  }
  // INBOX's children keep INBOX upper-case so they sort under it.
  if (levels[0]!.toUpperCase() === 'INBOX') levels[0] = 'INBOX';
  return levels.join(delimiter);
}

/** patternMatcher - a LIST pattern as a test: `*` any run, `%` any run without the delimiter. */
export function patternMatcher(pattern: string, delimiter: string): (name: string) => boolean {
  const d = delimiter.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '%') re += `[^${d}]*`;
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  const exact = new RegExp(`^${re}$`, 's');
  // INBOX is case-insensitive, also as the first level of a pattern.
  const inboxRe = /^inbox/i.test(pattern) ? new RegExp(`^${re.replace(/^inbox/i, 'INBOX')}$`, 's') : null;
  return (name) => exact.test(name) || (inboxRe !== null && inboxRe.test(name));
}

/**
 * fromWire / toWire - IMAP4rev1 clients name folders in modified UTF-7 (RFC 3501 §5.1.3);
 * mailboxd speaks UTF-8. A name that does not round-trip is not valid modified UTF-7.
 */
export function fromWire(name: string): string {
  if (!name.includes('&')) return name;
  let decoded: string;
  try {
    decoded = utf7.imap.decode(name);
  } catch {
    throw new BadNameError('Invalid modified UTF-7 in mailbox name');
  }
  if (utf7.imap.encode(decoded) !== name) throw new BadNameError('Invalid modified UTF-7 in mailbox name');
  return decoded;
}

export function toWire(name: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x20-\x25\x27-\x7e]*$/.test(name) ? name : utf7.imap.encode(name);
}

/** The RFC 6154 folders every user has, by name. */
export const SPECIAL_USE: Record<string, string> = {
  Sent: '\\Sent',
  Drafts: '\\Drafts',
  Trash: '\\Trash',
  Junk: '\\Junk',
  Archive: '\\Archive',
};

export function specialUse(name: string): string | undefined {
  return Object.hasOwn(SPECIAL_USE, name) ? SPECIAL_USE[name] : undefined;
}
