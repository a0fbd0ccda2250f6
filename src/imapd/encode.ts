// IMAP output syntax (RFC 9051 §4): strings as quoted or literal, NIL, flag lists, dates.
// A response is a JS string written as UTF-8, so literal lengths count UTF-8 bytes.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** istring - a string as quoted when it can be, else as a literal. */
export function istring(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (s.length < 1000 && /^[\x20-\x7e]*$/.test(s)) return `"${s.replace(/[\\"]/g, '\\$&')}"`;
  return `{${Buffer.byteLength(s)}}\r\n${s}`;
}

/** nstring - NIL for null, else istring. */
export function nstring(s: string | null | undefined): string {
  return s === null || s === undefined ? 'NIL' : istring(s);
}

/** astring - an atom when the characters allow it (mailbox names in LIST), else istring. */
export function astring(s: string): string {
  return /^[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]+$/.test(s) && s.toUpperCase() !== 'NIL' ? s : istring(s);
}

/** literalHeader - the `{N}` line that comes before N raw octets. */
export function literalHeader(n: number): string {
  return `{${n}}\r\n`;
}

export function flagList(flags: readonly string[]): string {
  return `(${flags.join(' ')})`;
}

/** internalDate - "17-Jul-1996 02:44:25 +0000" (we keep and show UTC). */
export function formatInternalDate(ms: number): string {
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `"${p2(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000"`;
}

/** parseDateTime - APPEND's date-time, "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded). */
export function parseDateTime(s: string): number | null {
  const m = /^ ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})$/.exec(s);
  if (!m) return null;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return null;
  const utc = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  const zone = (Number(m[8]) * 60 + Number(m[9])) * 60_000 * (m[7] === '-' ? -1 : 1);
  const t = utc - zone;
  return Number.isFinite(t) ? t : null;
}

/** parseSearchDate - SEARCH's date, "1-Feb-1994": midnight UTC of that day, or null. */
export function parseSearchDate(s: string): number | null {
  const m = /^([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})$/.exec(s);
  if (!m) return null;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return null;
  return Date.UTC(Number(m[3]), month, Number(m[1]));
}
