// Mail address helpers shared by every server: the one place that decides what a user name
// and a domain look like, checked at each trust boundary.

/** A user name is a full address; anything that could escape a folder is refused. */
const USER_RE = /^[^\s/\\@\x00-\x1f\x7f]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

/** normalizeAddress - trim, drop <>, lower-case the domain (local parts keep their case). */
export function normalizeAddress(addr: string): string {
  let a = addr.trim();
  if (a.startsWith('<') && a.endsWith('>')) a = a.slice(1, -1);
  const at = a.lastIndexOf('@');
  if (at < 0) return a;
  return a.slice(0, at) + '@' + a.slice(at + 1).toLowerCase();
}

/** domainOf - the lower-case domain of an address ('' when none). */
export function domainOf(addr: string): string {
  const at = addr.lastIndexOf('@');
  return at < 0 ? '' : addr.slice(at + 1).toLowerCase();
}

/** localPartOf - the part before the last `@`. */
export function localPartOf(addr: string): string {
  const at = addr.lastIndexOf('@');
  return at < 0 ? addr : addr.slice(0, at);
}

/**
 * isSafeUserName - a full address usable as a mailbox folder name: no `/`, `\`, NUL, control
 * characters, white space, no `..` and not `.`-led; domain in LDH form.
 */
export function isSafeUserName(user: string): boolean {
  if (!USER_RE.test(user)) return false;
  if (user.includes('..') || user.startsWith('.')) return false;
  return true;
}

/** canonicalUser - the form user names are stored and looked up in: trimmed, no <>, lower case. */
export function canonicalUser(addr: string): string {
  return normalizeAddress(addr).toLowerCase();
}
