// dovecot-uidlist: Dovecot's UID map of one Maildir folder, read and written in its v3 format
//   3 V<uidvalidity> N<nextuid> G<guid>
//   <uid> :<file name without :2,...>
// so Dovecot pointed at the same Maildir shows the same UIDs. Writers hold Dovecot's dotlock
// (`dovecot-uidlist.lock`, O_EXCL, stale after 120 s). New messages are appended (as Dovecot
// does); the file is rewritten only to drop lines of removed messages, via the lock file.

import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fsyncDir } from '../shared/durable.js';
import { fileStamp } from '../shared/stamp.js';

export const UIDLIST = 'dovecot-uidlist';
const LOCK_STALE_MS = 120_000;
const LOCK_WAIT_MS = 10_000;

export interface UidlistHeader {
  uidvalidity: number;
  nextUid: number;
  guid: string;
}

export interface UidlistFile extends UidlistHeader {
  /** uidlist key (name up to `:`) -> UID. */
  uids: Map<string, number>;
  lines: number;
  stamp: string;
}

/** uidlistStamp - what tells a changed uidlist: inode, size, mtime. */
export async function uidlistStamp(dir: string): Promise<string> {
  return fileStamp(await fsp.stat(path.join(dir, UIDLIST), { bigint: true }).catch(() => null));
}

/** readUidlist - the parsed file, or null when it is missing or not a v3 uidlist. */
export async function readUidlist(dir: string): Promise<UidlistFile | null> {
  let text: string;
  let stamp: string;
  try {
    const fh = await fsp.open(path.join(dir, UIDLIST), 'r');
    try {
      const st = await fh.stat({ bigint: true });
      stamp = fileStamp(st);
      text = (await fh.readFile()).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
  const nl = text.indexOf('\n');
  const head = (nl < 0 ? text : text.slice(0, nl)).split(' ');
  if (head[0] !== '3') return null;
  let uidvalidity = 0;
  let nextUid = 1;
  let guid = '';
  for (const f of head.slice(1)) {
    if (f[0] === 'V') uidvalidity = Number(f.slice(1));
    else if (f[0] === 'N') nextUid = Number(f.slice(1));
    else if (f[0] === 'G') guid = f.slice(1);
  }
  if (!Number.isSafeInteger(uidvalidity) || uidvalidity <= 0 || !Number.isSafeInteger(nextUid)) return null;
  const uids = new Map<string, number>();
  let lines = 0;
  let from = nl + 1;
  while (nl >= 0 && from < text.length) {
    let end = text.indexOf('\n', from);
    if (end < 0) end = text.length;
    const colon = text.indexOf(' :', from);
    if (colon > from && colon < end) {
      const sp = text.indexOf(' ', from);
      const uid = Number(text.slice(from, sp));
      const name = text.slice(colon + 2, end);
      const key = uidKey(name);
      if (Number.isSafeInteger(uid) && uid > 0 && key.length > 0) {
        uids.set(key, uid);
        if (uid >= nextUid) nextUid = uid + 1;
        lines++;
      }
    }
    from = end + 1;
  }
  return { uidvalidity, nextUid, guid, uids, lines, stamp };
}

/** uidKey - the part of a file name Dovecot matches on: everything before `:`. */
export function uidKey(name: string): string {
  const c = name.indexOf(':');
  return c < 0 ? name : name.slice(0, c);
}

export function headerLine(h: UidlistHeader): string {
  return `3 V${h.uidvalidity} N${h.nextUid} G${h.guid}\n`;
}

export function newGuid(): string {
  return randomBytes(16).toString('hex');
}

/** withLock - run FN holding Dovecot's dotlock for the folder's uidlist. */
/** lockOwner - Dovecot's dotlock content: whose lock it is, so a dead holder's lock can be broken. */
export function lockOwner(): string {
  return `${process.pid}:${os.hostname()}`;
}

export async function withLock<T>(dir: string, fn: (lockPath: string) => Promise<T>): Promise<T> {
  const lockPath = path.join(dir, UIDLIST + '.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  let fh: Awaited<ReturnType<typeof fsp.open>> | null = null;
  for (let attempt = 0; ; attempt++) {
    try {
      fh = await fsp.open(lockPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
      await fh.write(lockOwner());
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        const st = await fsp.stat(lockPath);
        if (Date.now() - st.mtimeMs > LOCK_STALE_MS || holderDead(await fsp.readFile(lockPath, 'utf8'), Date.now() - st.mtimeMs)) await fsp.rm(lockPath, { force: true });
      } catch {
        // gone meanwhile: try again
      }
      if (Date.now() > deadline) throw new Error('uidlist is locked');
      await new Promise((r) => setTimeout(r, Math.min(50, 2 + attempt * 5)));
    }
  }
  try {
    return await fn(lockPath);
  } finally {
    await fh.close().catch(() => {});
    await fsp.unlink(lockPath).catch(() => {});
  }
}

/** holderDead - the lock says it is held by a process of this host that no longer runs. */
function holderDead(content: string, ageMs: number): boolean {
  // Empty: the holder died between creating and writing it (a live one writes at once).
  if (content === '') return ageMs > 2000;
  const m = /^(\d+):(.*)$/.exec(content.trim());
  if (!m || m[2] !== os.hostname()) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** sweepRewrites - remove rewrite files a crash left behind (`dovecot-uidlist.lock.PID.RAND`). */
export async function sweepRewrites(dir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^dovecot-uidlist\.lock\.(\d+)\.[0-9a-f]+$/.exec(n);
    if (m && holderDead(`${m[1]}:${os.hostname()}`, 0)) await fsp.rm(path.join(dir, n), { force: true }).catch(() => {});
  }
}

/** appendLines - add lines to the uidlist and fdatasync it (inside withLock). */
export async function appendLines(dir: string, text: string): Promise<void> {
  const fh = await fsp.open(path.join(dir, UIDLIST), 'a', 0o600);
  try {
    await fh.write(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** rewrite - write the whole file into the lock file and rename it over (inside withLock). */
export async function rewrite(dir: string, lockPath: string, text: string): Promise<void> {
  const tmp = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const fh = await fsp.open(tmp, 'w', 0o600);
  try {
    await fh.write(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path.join(dir, UIDLIST));
  await fsyncDir(dir);
}
