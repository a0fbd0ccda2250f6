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
  // Hand-rolled scanning rather than regular expressions: `list` parses every name every time.
  if (name.length === 0 || name.charCodeAt(0) === 0x2e) return null;
  let end = name.indexOf(':');
  if (end < 0) end = name.length;
  const comma = name.indexOf(',');
  const uidEnd = comma >= 0 && comma < end ? comma : end;
  const uid = name.slice(0, uidEnd);
  let size = -1;
  if (uidEnd < end) {
    const at = name.indexOf(',S=', uidEnd);
    if (at >= 0 && at < end) {
      const [v, next] = digitsAt(name, at + 3, end);
      if (next > at + 3 && (next === end || name.charCodeAt(next) === 0x2c)) size = v;
    }
  }
  const [secs, dot] = digitsAt(name, 0, uidEnd);
  let usecs = 0;
  let seq = 0;
  if (dot < uidEnd && name.charCodeAt(dot) === 0x2e) {
    let midEnd = name.indexOf('.', dot + 1);
    if (midEnd < 0 || midEnd > uidEnd) midEnd = uidEnd;
    for (let i = dot + 1; i < midEnd; i++) {
      const c = name.charCodeAt(i);
      if (c === 0x4d /* M */ || c === 0x51 /* Q */) {
        const [v, next] = digitsAt(name, i + 1, midEnd);
        if (next > i + 1) {
          if (c === 0x4d) usecs = v;
          else seq = v;
          i = next - 1;
        }
      }
    }
  }
  return { uid, rel: `${dir}/${name}`, size, secs: dot > 0 ? secs : Number.MAX_SAFE_INTEGER, usecs, seq };
}

/** digitsAt - the decimal number starting at `from` (before `end`) and the offset after it. */
function digitsAt(s: string, from: number, end: number): [number, number] {
  let v = 0;
  let i = from;
  for (; i < end && i - from < 15; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + (c - 0x30);
  }
  return [v, i];
}

/** compareArrival - arrival order: time, then microseconds, then counter, then name. */
export function compareArrival(a: MaildirEntry, b: MaildirEntry): number {
  return a.secs - b.secs || a.usecs - b.usecs || a.seq - b.seq || (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0);
}
