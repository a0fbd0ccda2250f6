// Folder names: the IPC spells them in UTF-8 with `.` between levels (Dovecot's Maildir++
// default); on disk a folder is `.NAME/` in the user's Maildir with NAME in IMAP modified
// UTF-7, as Dovecot writes it. Everything that turns a folder name into a path passes here.

/** The hierarchy delimiter of folder names (Maildir++). */
export const DELIMITER = '.';
const MAX_NAME_BYTES = 200;

/** folderKey - `INBOX` for any casing of it, else the name itself; null when the name is refused. */
export function folderKey(name: string): string | null {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name.length === 0 || Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return null;
  if (/[\x00-\x1f\x7f/\\*%]/.test(name)) return null;
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) return null;
  if (name.toUpperCase().startsWith('INBOX.')) return null;
  return name;
}

/** folderDirName - the directory name in the Maildir (`.` + mUTF-7), '' for INBOX. */
export function folderDirName(key: string): string {
  return key === 'INBOX' ? '' : '.' + encodeMutf7(key);
}

/** folderFromDirName - the folder for a Maildir entry `.NAME`, or null if it is not one. */
export function folderFromDirName(entry: string): string | null {
  if (!entry.startsWith('.') || entry === '.' || entry === '..') return null;
  const name = decodeMutf7(entry.slice(1));
  return name === null ? null : folderKey(name) === name ? name : null;
}

/** encodeMutf7 - RFC 3501 §5.1.3 modified UTF-7. */
export function encodeMutf7(s: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    const bytes = Buffer.alloc(pending.length * 2);
    pending.forEach((u, i) => bytes.writeUInt16BE(u, i * 2));
    out += '&' + bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',') + '-';
    pending = [];
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      out += c === 0x26 ? '&-' : s[i];
    } else {
      pending.push(c);
    }
  }
  flush();
  return out;
}

/** decodeMutf7 - the inverse; null for a malformed name. */
export function decodeMutf7(s: string): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch !== '&') {
      out += ch;
      continue;
    }
    const end = s.indexOf('-', i + 1);
    if (end < 0) return null;
    const b64 = s.slice(i + 1, end);
    if (b64 === '') out += '&';
    else {
      if (!/^[A-Za-z0-9+,]+$/.test(b64)) return null;
      const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
      for (let j = 0; j + 1 < bytes.length; j += 2) out += String.fromCharCode(bytes.readUInt16BE(j));
    }
    i = end;
  }
  return out;
}
