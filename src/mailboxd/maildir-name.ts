// Maildir file names, as Dovecot writes them: `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>`, plus
// `:2,<flags>` once in cur/. Parsing is tolerant: any name Dovecot, Postfix or qmail wrote is
// accepted, and one without `,S=` simply needs a stat for its size.

import os from 'node:os';

/** One message file as found in new/ or cur/. */
export interface MaildirEntry {
  /** Base name before the first `,` or `:`: stable when the file moves new -> cur (POP3 UIDL). */
  uid: string;
  /** Path relative to the Maildir, e.g. `new/123.M4P5Q6.host,S=10`. */
  rel: string;
  /** Size from `,S=`, or -1 when the name lacks it. */
  size: number;
  /** Sort key parts: seconds, microseconds, delivery counter. */
  secs: number;
  usecs: number;
  seq: number;
}

let counter = 0;

/** maildirHost - the host part of a name: `/` and `:` escaped the way Dovecot does. */
export function maildirHost(host = os.hostname()): string {
  return (host || 'localhost').replace(/\//g, '\\057').replace(/:/g, '\\072').replace(/,/g, '\\054');
}

/** newBaseName - a unique base name: time to the microsecond, pid, and a per-process counter. */
export function newBaseName(host: string): string {
  const nowUs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
  const secs = nowUs / 1_000_000n;
  const usecs = nowUs % 1_000_000n;
  counter++;
  return `${secs}.M${usecs}P${process.pid}Q${counter}.${host}`;
}

/** parseName - the entry for a file name in `dir` (`new` or `cur`), or null for dot files. */
export function parseName(dir: 'new' | 'cur', name: string): MaildirEntry | null {
  if (name.length === 0 || name.startsWith('.')) return null;
  const colon = name.indexOf(':');
  const stem = colon >= 0 ? name.slice(0, colon) : name;
  const comma = stem.indexOf(',');
  const uid = comma >= 0 ? stem.slice(0, comma) : stem;
  let size = -1;
  if (comma >= 0) {
    for (const field of stem.slice(comma + 1).split(',')) {
      if (field.startsWith('S=') && /^\d+$/.test(field.slice(2))) size = Number(field.slice(2));
    }
  }
  const dot = uid.indexOf('.');
  const secs = Number(dot >= 0 ? uid.slice(0, dot) : uid);
  const middle = dot >= 0 ? uid.slice(dot + 1, uid.indexOf('.', dot + 1) >= 0 ? uid.indexOf('.', dot + 1) : undefined) : '';
  const m = /M(\d+)/.exec(middle);
  const q = /Q(\d+)/.exec(middle);
  return {
    uid,
    rel: `${dir}/${name}`,
    size,
    secs: Number.isFinite(secs) ? secs : Number.MAX_SAFE_INTEGER,
    usecs: m ? Number(m[1]) : 0,
    seq: q ? Number(q[1]) : 0,
  };
}

/** compareArrival - arrival order: time, then microseconds, then counter, then name. */
export function compareArrival(a: MaildirEntry, b: MaildirEntry): number {
  return a.secs - b.secs || a.usecs - b.usecs || a.seq - b.seq || (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0);
}
