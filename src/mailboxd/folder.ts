// Folder - the index of one Maildir folder (INBOX or a Maildir++ `.Name/`): UID -> file, size,
// flags, MODSEQ, in UID (= arrival) order, kept in memory and persisted in dovecot-uidlist.
//
// Mechanisms:
// - "stat check": before answering from memory, `sync()` compares the mtimes of new/ and cur/
//   and the uidlist's stamp with what this index last saw; a difference (another MDA, Dovecot,
//   a user's mutt) runs a "reconcile": readdir both, drop what is gone, adopt renames (flags),
//   number what is new. Our own changes re-read the stamps right after they are made.
//   `fetch` skips it (its UID came from an earlier answer; readMessage follows a rename).
// - "deferred numbering" (what Dovecot does for mail another MDA delivers): a store is
//   acknowledged once its file and directory entry are durable; its UID comes a little later
//   (NUMBER_DELAY_MS, or at once when a reader asks: sync() and ready() number first), when
//   all the stores of that moment are appended to the uidlist in one locked write + fdatasync.
//   A UID is seen by nobody before its line is on disk, so a crash can never hand it out twice;
//   a crash before the line is written leaves a file in new/ that the next load numbers.
//   IMAP APPEND (it answers with the UID) and copies number at once. UIDs are handed out only
//   under the uidlist lock, so Dovecot writing the same file never makes two messages share one.
// - "batched expunge": concurrent `dele`s share one directory fsync.
// A mutex orders reconciles and every change of the folder's files, so a reconcile never sees
// a rename half done.

import { promises as fsp, statSync } from 'node:fs';
import path from 'node:path';

import { Keywords } from './flags.js';
import type { DirCommit, DirSyncer, GatherOptions } from '../shared/durable.js';
import { runIo } from '../shared/io-pool.js';
import { dirStamp } from '../shared/stamp.js';
import { SMALL_MESSAGE, gatherBody, inMemory, iterate, writeBigMessage, writeSmallMessage } from './maildir.js';
import { newBaseName, parseName } from './maildir-name.js';
import { Mutex, nextModseq } from './modseq.js';
import { UIDLIST, type UidlistFile, appendLines, headerLine, lockOwner, newGuid, readUidlist, rewrite, sweepRewrites, uidKey, uidlistStamp, withLock } from './uidlist.js';

export type Sub = 'new' | 'cur';

/** One message of the folder. Objects stay the same while the message exists (renames update them). */
export interface Msg {
  uid: number;
  /** uidlist key: file name up to `:`. */
  key: string;
  /** POP3 UIDL: the Maildir base name (before `,` or `:`), as before the index existed. */
  pop3: string;
  sub: Sub;
  name: string;
  size: number;
  /** Maildir info letters after `:2,` (sorted). */
  letters: string;
  modseq: number;
  /** INTERNALDATE (file mtime, seconds); -1 until asked. */
  mtime: number;
  /** Exactly-once delivery key (`,D=` in the name), or null. */
  dkey: string | null;
  gone: boolean;
  secs: number;
  usecs: number;
  seq: number;
}

export interface Expunged {
  uid: number;
  modseq: number;
}

const MAX_EXPUNGE_LOG = 100_000;
/**
 * How long a stored message may wait for its UID when no reader asks (IDLE hears of it then):
 * the uidlist's fdatasync is shared by all the stores of that time.
 */
const NUMBER_DELAY_MS = 100;
/**
 * A delivery's rename waits for others to share new/'s fsync: up to 20 ms, while files are on
 * their way or the last rename joined under 2 ms ago, and no longer once 16 wait (half the
 * router's default concurrency, so one batch gathers while the one before is synced). Nobody
 * waits on it but the router: the SMTP 250 was given before. IMAP APPEND does not wait so.
 */
const DELIVERY_GATHER: GatherOptions = { maxMs: 20, count: 16, idleMs: 2 };
/** Numbered at once when this many wait. */
const NUMBER_BATCH = 512;
let lastUidValidity = 0;

/** newUidValidity - unix time, strictly increasing within this process. */
function newUidValidity(): number {
  lastUidValidity = Math.max(lastUidValidity + 1, Math.floor(Date.now() / 1000));
  return lastUidValidity;
}

/** infoLetters - the flag letters of a file name (after `:2,`). */
function infoLetters(name: string): string {
  const at = name.indexOf(':2,');
  return at < 0 ? '' : name.slice(at + 3);
}

/** dkeyOf - the `,D=` delivery key in a base name, or null. */
function dkeyOf(key: string): string | null {
  const at = key.indexOf(',D=');
  if (at < 0) return null;
  const end = key.indexOf(',', at + 3);
  return key.slice(at + 3, end < 0 ? key.length : end);
}

export class Folder {
  readonly keywords: Keywords;
  uidvalidity = 0;
  uidnext = 1;
  /** Grows with every change of the message list or a file's place: lets answers be cached. */
  version = 0;
  highestModseq = 0;
  /** Live messages in UID order. */
  private msgs: Msg[] = [];
  private readonly byKey = new Map<string, Msg>();
  readonly byDkey = new Map<string, Msg>();
  /** Files renamed into place but not numbered yet (a reconcile leaves them alone). */
  private readonly pendingKeys = new Set<string>();
  private guid = '';
  private loaded: Promise<void> | null = null;
  private readonly lock = new Mutex();
  private stamps = { new: '', cur: '', uidlist: '' };
  private fileLines = 0;
  private needRewrite = false;
  private readonly expungeLog: Expunged[] = [];
  /** Expunges with a MODSEQ above this are all in expungeLog. */
  expungeFloor = 0;
  private commitQueue: Array<{ m: Msg; deferred: boolean; resolve(): void; reject(err: Error): void }> = [];
  private commitScheduled = false;
  private deleteQueue: Array<{ m: Msg; resolve(ok: boolean): void; reject(err: Error): void }> = [];
  private deleteScheduled = false;
  /** Stored (durable) and acknowledged, waiting for their UID (deferred numbering). */
  private unnumbered: Msg[] = [];
  private numberTimer: NodeJS.Timeout | null = null;
  private numberingWarnedAt = 0;
  /** Numberings under way: a reader waits for them too. */
  private readonly numbering = new Set<Promise<void>>();

  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly host: string,
    private readonly syncer: DirSyncer,
    private readonly onChange: (folder: Folder) => void,
    /** A deferred numbering failed (retried every second; told at most once a minute). */
    private readonly onNumberingFailed: (err: Error) => void = () => {},
  ) {
    this.keywords = new Keywords(dir);
  }

  /** ready - the index loaded, every acknowledged store numbered. */
  ready(): Promise<void> {
    const loaded = this.load();
    if (this.unnumbered.length === 0 && this.numbering.size === 0) return loaded;
    return loaded.then(() => this.settle());
  }

  /** load - load the index once (creating tmp/ new/ cur/ if missing). */
  load(): Promise<void> {
    if (!this.loaded) {
      this.loaded = this.lock.run(async () => {
        for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(path.join(this.dir, sub), { recursive: true, mode: 0o700 });
        await sweepTmp(path.join(this.dir, 'tmp'));
        await sweepRewrites(this.dir);
        await this.reconcile(true);
      });
      this.loaded.catch(() => (this.loaded = null));
    }
    return this.loaded;
  }

  /** sync - the stat check; reconcile when something changed behind our back. */
  async sync(): Promise<void> {
    await this.ready();
    const [n, c, u] = await Promise.all([folderStamp(path.join(this.dir, 'new')), folderStamp(path.join(this.dir, 'cur')), uidlistStamp(this.dir)]);
    if (n === this.stamps.new && c === this.stamps.cur && u === this.stamps.uidlist) return;
    await this.lock.run(() => this.reconcile(false));
  }

  /** resync - reconcile now (a file we expected was gone: moved by another reader). */
  resync(): Promise<void> {
    return this.lock.run(() => this.reconcile(false));
  }

  /** messages - the live messages in UID order (the array is not to be changed). */
  messages(): readonly Msg[] {
    return this.msgs;
  }

  /** get - the message with this UID, or undefined. */
  get(uid: number): Msg | undefined {
    let lo = 0;
    let hi = this.msgs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = this.msgs[mid]!.uid;
      if (u === uid) return this.msgs[mid];
      if (u < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  maxUid(): number {
    return this.msgs.length ? this.msgs[this.msgs.length - 1]!.uid : 0;
  }

  /** pathOf - where the message's file is now (inside this folder: sub + a readdir name). */
  pathOf(m: Msg): string {
    return path.join(this.dir, m.sub, m.name);
  }

  /** internalDate - the file's mtime in seconds (stat once, then remembered). */
  internalDate(m: Msg): number {
    if (m.mtime < 0) {
      try {
        m.mtime = Math.floor(statSync(this.pathOf(m)).mtimeMs / 1000);
      } catch {
        m.mtime = m.secs < Number.MAX_SAFE_INTEGER ? m.secs : 0;
      }
    }
    return m.mtime;
  }

  /** expunges - the expunge log since MODSEQ. */
  expungedSince(modseq: number): Expunged[] {
    return this.expungeLog.filter((e) => e.modseq > modseq);
  }

  usage(): number {
    let total = 0;
    for (const m of this.msgs) total += m.size;
    for (const m of this.unnumbered) total += m.size;
    return total;
  }

  /**
   * deliver - write exactly `size` bytes from `body` as a new message; durable (file and
   * directory entry) when it resolves, and numbered then only if `numbered` is asked (else
   * soon after: deferred numbering).
   */
  async deliver(body: AsyncIterable<Buffer> | readonly Buffer[], size: number, opts: { dkey?: string; letters?: string; mtime?: number; numbered?: boolean } = {}): Promise<Msg> {
    await this.load();
    const base = newBaseName(this.host);
    const letters = opts.letters ?? '';
    const key = `${base},S=${size}${opts.dkey ? `,D=${opts.dkey}` : ''}`;
    const sub: Sub = letters ? 'cur' : 'new';
    const name = letters ? `${key}:2,${letters}` : key;
    const m = this.makeMsg(sub, name, size);
    this.pendingKeys.add(key);
    let deferred = false;
    try {
      const finalPath = path.join(this.dir, sub, name);
      // Small: written and fdatasynced in one job; big: streamed to tmp/. Then the rename, in
      // new/'s commit job shared with concurrent stores (a delivery lets it gather longer).
      const gather = opts.numbered ? undefined : DELIVERY_GATHER;
      const done =
        size <= SMALL_MESSAGE
          ? await writeSmallMessage(this.syncer, this.dir, base, await gatherBody(body, size), finalPath, opts.mtime, gather)
          : await writeBigMessage(this.syncer, this.dir, base, inMemory(body) ? iterate(body) : body, size, finalPath, opts.mtime, gather);
      this.ownChange(sub, done);
      m.mtime = opts.mtime ?? Math.floor(Date.now() / 1000);
      if (opts.numbered) await this.commit(m);
      else {
        this.defer(m);
        deferred = true;
      }
    } finally {
      // A deferred message stays pending (a reconcile leaves it to its numbering).
      if (!deferred) this.pendingKeys.delete(key);
    }
    return m;
  }

  /**
   * ownChange - a commit job of ours changed folder SUB: its stamp after the job is ours to
   * take only if the one before it was what we last knew (else someone else changed the
   * folder meanwhile, and the next stat check must see a difference and reconcile).
   */
  private ownChange(sub: Sub, c: DirCommit): void {
    if (c.before !== '' && c.before === this.stamps[sub]) this.stamps[sub] = c.after;
  }

  /** settle - number every acknowledged store now, and wait for numberings under way. */
  async settle(): Promise<void> {
    if (this.unnumbered.length > 0) this.numberDeferred();
    while (this.numbering.size > 0) await Promise.all(this.numbering);
  }

  /** defer - a durable message to number soon (a duplicate store finds it by its key meanwhile). */
  private defer(m: Msg): void {
    this.unnumbered.push(m);
    if (m.dkey) this.byDkey.set(m.dkey, m);
    if (this.unnumbered.length >= NUMBER_BATCH) this.numberDeferred();
    else this.numberTimer ??= setTimeout(() => this.numberDeferred(), NUMBER_DELAY_MS).unref();
  }

  /** numberDeferred - number the waiting messages in one uidlist append; on failure they wait for the next try. */
  private numberDeferred(): void {
    if (this.numberTimer) clearTimeout(this.numberTimer);
    this.numberTimer = null;
    const batch = this.unnumbered.splice(0);
    if (batch.length === 0) return;
    const p = Promise.all(batch.map((m) => this.commit(m, true))).then(
      () => {
        for (const m of batch) this.pendingKeys.delete(m.key);
      },
      (err: unknown) => {
        // The files are durable and acknowledged: numbered by the next try (or the next load).
        if (Date.now() - this.numberingWarnedAt >= 60_000) {
          this.numberingWarnedAt = Date.now();
          this.onNumberingFailed(err instanceof Error ? err : new Error(String(err)));
        }
        const left = batch.filter((m) => !this.byKey.has(m.key));
        this.unnumbered.unshift(...left);
        for (const m of batch) if (this.byKey.has(m.key)) this.pendingKeys.delete(m.key);
        this.numberTimer ??= setTimeout(() => this.numberDeferred(), 1000).unref();
      },
    );
    this.numbering.add(p);
    void p.finally(() => this.numbering.delete(p));
  }

  /** adopt - number files already linked or renamed into this folder by copy/move. */
  async adopt(files: Array<{ sub: Sub; name: string; size: number; mtime: number }>): Promise<Msg[]> {
    await this.load();
    const msgs = files.map((f) => {
      const m = this.makeMsg(f.sub, f.name, f.size);
      m.mtime = f.mtime;
      return m;
    });
    for (const m of msgs) this.pendingKeys.add(m.key);
    try {
      const subs = new Set(files.map((f) => f.sub));
      await Promise.all([...[...subs].map((s) => this.syncer.sync(path.join(this.dir, s))), ...msgs.map((m) => this.commit(m))]);
    } finally {
      for (const m of msgs) this.pendingKeys.delete(m.key);
    }
    return msgs;
  }

  /** newFileName - a fresh name for a copy into this folder. */
  newFileName(size: number, letters: string): { sub: Sub; name: string } {
    const key = `${newBaseName(this.host)},S=${size}`;
    return letters ? { sub: 'cur', name: `${key}:2,${letters}` } : { sub: 'new', name: key };
  }

  /** remove - unlink the message (batched with concurrent removes: one directory fsync). */
  remove(m: Msg): Promise<boolean> {
    if (m.gone) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      this.deleteQueue.push({ m, resolve, reject });
      if (!this.deleteScheduled) {
        this.deleteScheduled = true;
        void this.lock.run(() => this.flushDeletes());
      }
    });
  }

  /** setLetters - rename each message to its new flag letters; no fsync (flags are not acknowledged mail). */
  async setLetters(changes: Array<{ m: Msg; letters: string }>): Promise<void> {
    await this.lock.run(async () => {
      let retry: Array<{ m: Msg; letters: string }> = [];
      for (let pass = 0; pass < 2; pass++) {
        for (const { m, letters } of pass === 0 ? changes : retry) {
          if (m.gone || m.letters === letters) continue;
          const name = `${m.key}:2,${letters}`;
          try {
            await fsp.rename(this.pathOf(m), path.join(this.dir, 'cur', name));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
            if (pass === 0) retry.push({ m, letters });
            continue;
          }
          m.sub = 'cur';
          m.name = name;
          m.letters = letters;
          this.version++;
          m.modseq = this.bump();
        }
        if (pass === 0 && retry.length > 0) await this.reconcile(false);
        else break;
      }
      retry = [];
      await this.restamp();
    });
    this.onChange(this);
  }

  private bump(): number {
    const v = nextModseq();
    this.highestModseq = v;
    return v;
  }

  private makeMsg(sub: Sub, name: string, size = -1): Msg {
    const e = parseName(sub, name)!;
    const key = uidKey(name);
    return {
      uid: 0,
      key,
      pop3: e.uid,
      sub,
      name,
      size: size >= 0 ? size : e.size,
      letters: infoLetters(name),
      modseq: 0,
      mtime: -1,
      dkey: dkeyOf(key),
      gone: false,
      secs: e.secs,
      usecs: e.usecs,
      seq: e.seq,
    };
  }

  private commit(m: Msg, deferred = false): Promise<void> {
    return new Promise((resolve, reject) => {
      this.commitQueue.push({ m, deferred, resolve, reject });
      if (!this.commitScheduled) {
        this.commitScheduled = true;
        void this.lock.run(() => this.flushCommits());
      }
    });
  }

  private async flushCommits(): Promise<void> {
    this.commitScheduled = false;
    const batch = this.commitQueue.splice(0);
    if (batch.length === 0) return;
    try {
      // A deferred store's rename is long past: the folders' stamps now may hold others' changes too.
      await this.number(
        batch.map((b) => b.m),
        !batch.some((b) => b.deferred),
      );
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
    }
    this.onChange(this);
  }

  /**
   * number - give new messages their UIDs and persist them (under the folder mutex). With
   * `takeDirStamps`, new/'s and cur/'s stamps afterwards are taken as our own change (the
   * caller's renames were just made).
   */
  private async number(fresh: Msg[], takeDirStamps = true): Promise<void> {
    if (await this.appendFast(fresh, takeDirStamps)) {
      for (const m of fresh) this.insert(m);
      return;
    }
    let foreign = false;
    /** Already in the file: another writer numbered them (never a second line for one file). */
    const listed = new Set<Msg>();
    await withLock(this.dir, async (lockPath) => {
      const stamp = await uidlistStamp(this.dir);
      if (stamp !== this.stamps.uidlist) {
        foreign = true;
        const f = stamp === 'none' ? null : await readUidlist(this.dir);
        if (f && f.uidvalidity === this.uidvalidity) {
          // Another writer (Dovecot) added lines: take its numbers, never hand one out twice.
          this.uidnext = Math.max(this.uidnext, f.nextUid);
          for (const m of fresh) {
            const u = f.uids.get(m.key);
            if (u && !this.get(u)) {
              m.uid = u;
              listed.add(m);
            }
          }
          this.fileLines = f.lines;
        } else {
          this.needRewrite = true;
        }
      }
      for (const m of fresh) {
        if (!m.uid) m.uid = this.uidnext++;
        if (m.uid >= this.uidnext) this.uidnext = m.uid + 1;
        m.modseq = this.bump();
      }
      const obsolete = this.fileLines - this.msgs.length;
      if (this.needRewrite || (obsolete > 1000 && obsolete > this.msgs.length)) {
        const all = [...this.msgs, ...fresh].sort((a, b) => a.uid - b.uid);
        let text = headerLine({ uidvalidity: this.uidvalidity, nextUid: this.uidnext, guid: this.guid });
        for (const m of all) text += `${m.uid} :${m.key}\n`;
        await rewrite(this.dir, lockPath, text);
        this.fileLines = all.length;
        this.needRewrite = false;
      } else {
        let text = '';
        for (const m of fresh) if (!listed.has(m)) text += `${m.uid} :${m.key}\n`;
        if (text !== '') await appendLines(this.dir, text);
        this.fileLines += fresh.length - listed.size;
      }
      this.stamps.uidlist = await uidlistStamp(this.dir);
    });
    for (const m of fresh) this.insert(m);
    // Another writer's lines (and the files they name) are not in the index yet: stamps that
    // match nothing make the next sync() reconcile, instead of taking them for our own change.
    if (foreign) this.stamps = { new: '', cur: '', uidlist: '' };
    else if (takeDirStamps) await this.restamp();
  }

  /**
   * appendFast - the common case of number() in one I/O hop: nobody else touched the uidlist
   * since we last did, no rewrite due. Lock, append, fdatasync, unlock and the new stamps in
   * one job; false (nothing changed) when the lock is taken or the file changed: number() then
   * goes the careful way.
   */
  private async appendFast(fresh: Msg[], takeDirStamps: boolean): Promise<boolean> {
    const obsolete = this.fileLines - this.msgs.length;
    const known = this.stamps.uidlist;
    if (this.needRewrite || known === '' || known === 'none' || (obsolete > 1000 && obsolete > this.msgs.length)) return false;
    const uidnext = this.uidnext;
    const given = fresh.map((m) => m.uid);
    let text = '';
    for (const m of fresh) {
      if (!m.uid) m.uid = this.uidnext++;
      if (m.uid >= this.uidnext) this.uidnext = m.uid + 1;
      text += `${m.uid} :${m.key}\n`;
    }
    const r = await runIo({
      op: 'lockedAppend',
      lock: path.join(this.dir, `${UIDLIST}.lock`),
      lockText: lockOwner(),
      file: path.join(this.dir, UIDLIST),
      expect: known,
      text,
      stampDirs: takeDirStamps ? [path.join(this.dir, 'new'), path.join(this.dir, 'cur')] : [],
    });
    if (r.locked || r.stale !== undefined) {
      this.uidnext = uidnext;
      fresh.forEach((m, i) => (m.uid = given[i]!));
      return false;
    }
    for (const m of fresh) m.modseq = this.bump();
    this.fileLines += fresh.length;
    if (takeDirStamps) this.stamps = { uidlist: r.stamp!, new: r.dirStamps![0]!, cur: r.dirStamps![1]! };
    else this.stamps.uidlist = r.stamp!;
    return true;
  }

  private insert(m: Msg): void {
    this.version++;
    const last = this.msgs[this.msgs.length - 1];
    if (!last || last.uid < m.uid) this.msgs.push(m);
    else {
      let i = this.msgs.length;
      while (i > 0 && this.msgs[i - 1]!.uid > m.uid) i--;
      this.msgs.splice(i, 0, m);
    }
    this.byKey.set(m.key, m);
    if (m.dkey) this.byDkey.set(m.dkey, m);
  }

  private drop(m: Msg): void {
    this.version++;
    m.gone = true;
    this.byKey.delete(m.key);
    if (m.dkey && this.byDkey.get(m.dkey) === m) this.byDkey.delete(m.dkey);
    const modseq = this.bump();
    this.expungeLog.push({ uid: m.uid, modseq });
    if (this.expungeLog.length > MAX_EXPUNGE_LOG) this.expungeFloor = this.expungeLog.splice(0, this.expungeLog.length - MAX_EXPUNGE_LOG).pop()!.modseq;
  }

  private async flushDeletes(): Promise<void> {
    this.deleteScheduled = false;
    const batch = this.deleteQueue.splice(0);
    if (batch.length === 0) return;
    try {
      const subs = new Set<Sub>();
      const results: boolean[] = [];
      let missing = false;
      for (const b of batch) results.push(await this.unlinkOne(b.m, subs).then((r) => (r === null ? ((missing = true), false) : r)));
      if (missing) {
        // Moved meanwhile (new -> cur by another reader): look again once.
        await this.reconcile(false);
        for (let i = 0; i < batch.length; i++) if (!results[i] && !batch[i]!.m.gone) results[i] = (await this.unlinkOne(batch[i]!.m, subs)) === true;
      }
      await Promise.all([...subs].map((s) => this.syncer.sync(path.join(this.dir, s))));
      let removed = false;
      for (let i = 0; i < batch.length; i++) {
        if (results[i]) {
          this.drop(batch[i]!.m);
          removed = true;
        }
      }
      if (removed) this.msgs = this.msgs.filter((m) => !m.gone);
      await this.restamp();
      for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
      if (removed) this.onChange(this);
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
    }
  }

  /** unlinkOne - true removed, null not where the index says, false already gone. */
  private async unlinkOne(m: Msg, subs: Set<Sub>): Promise<boolean | null> {
    if (m.gone) return false;
    try {
      await fsp.unlink(this.pathOf(m));
      subs.add(m.sub);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return null;
    }
  }

  /** restamp - remember the directories' state after our own change. */
  private async restamp(): Promise<void> {
    const [n, c] = await Promise.all([folderStamp(path.join(this.dir, 'new')), folderStamp(path.join(this.dir, 'cur'))]);
    this.stamps.new = n;
    this.stamps.cur = c;
  }

  /** reconcile - make the index agree with the directories and the uidlist (under the mutex). */
  private async reconcile(first: boolean): Promise<void> {
    const u = await uidlistStamp(this.dir);
    const [n, c] = await Promise.all([folderStamp(path.join(this.dir, 'new')), folderStamp(path.join(this.dir, 'cur'))]);
    let file: UidlistFile | null = null;
    if (first || u !== this.stamps.uidlist) file = u === 'none' ? null : await readUidlist(this.dir);
    const [newNames, curNames] = await Promise.all([readdirSafe(path.join(this.dir, 'new')), readdirSafe(path.join(this.dir, 'cur'))]);
    let changed = false;
    if (file) {
      if (!first && file.uidvalidity !== this.uidvalidity) {
        // The uidlist was replaced with other numbers: all our UIDs are void.
        for (const m of this.msgs) this.drop(m);
        this.msgs = [];
        changed = true;
      }
      this.uidvalidity = file.uidvalidity;
      this.uidnext = Math.max(this.uidnext, file.nextUid);
      this.guid = file.guid || this.guid || newGuid();
      this.fileLines = file.lines;
    } else if (first || u === 'none') {
      if (first) {
        this.uidvalidity = newUidValidity();
        this.guid = newGuid();
      }
      this.needRewrite = true;
    }
    if (first) {
      this.highestModseq = nextModseq();
      this.expungeFloor = this.highestModseq;
    }
    const seen = new Map<string, { sub: Sub; name: string }>();
    for (const [sub, names] of [['new', newNames], ['cur', curNames]] as const) {
      for (const name of names) {
        if (name.charCodeAt(0) === 0x2e) continue;
        // A pending file (being stored) is still seen: once numbered it is in the index
        // before its store is acknowledged, and a reconcile then must not drop it.
        seen.set(uidKey(name), { sub, name });
      }
    }
    const loadModseq = first ? this.highestModseq : 0;
    for (const m of this.msgs) {
      const s = seen.get(m.key);
      if (!s) {
        this.drop(m);
        changed = true;
        continue;
      }
      seen.delete(m.key);
      if (s.name !== m.name || s.sub !== m.sub) {
        const letters = infoLetters(s.name);
        m.sub = s.sub;
        m.name = s.name;
        this.version++;
        if (letters !== m.letters) {
          m.letters = letters;
          m.modseq = this.bump();
          changed = true;
        }
      }
    }
    if (changed) this.msgs = this.msgs.filter((m) => !m.gone);
    const known: Msg[] = [];
    const fresh: Msg[] = [];
    for (const [key, s] of seen) {
      // Being stored and not numbered yet: its store numbers it.
      if (this.pendingKeys.has(key)) continue;
      const m = this.makeMsg(s.sub, s.name);
      if (m.size < 0) {
        try {
          const st = await fsp.stat(path.join(this.dir, s.sub, s.name));
          if (!st.isFile()) continue;
          m.size = st.size;
          m.mtime = Math.floor(st.mtimeMs / 1000);
        } catch {
          continue;
        }
      }
      const uid = file?.uids.get(key);
      if (uid && uid < this.uidnext && !this.get(uid)) {
        m.uid = uid;
        m.modseq = first ? loadModseq : this.bump();
        known.push(m);
      } else {
        fresh.push(m);
      }
    }
    known.sort((a, b) => a.uid - b.uid);
    if (first && this.msgs.length === 0) {
      this.msgs = known;
      this.version++;
      for (const m of known) {
        this.byKey.set(m.key, m);
        if (m.dkey) this.byDkey.set(m.dkey, m);
      }
    } else {
      for (const m of known) this.insert(m);
    }
    if (known.length > 0 && !first) changed = true;
    this.stamps = { new: n, cur: c, uidlist: u };
    if (fresh.length > 0 || this.needRewrite) {
      fresh.sort(arrivalOrder);
      await this.number(fresh);
      if (!first) changed = true;
    }
    this.stamps.new = n;
    this.stamps.cur = c;
    if (changed) this.onChange(this);
  }
}

/** arrivalOrder - time, then microseconds, then counter, then name (as maildir-name's compareArrival). */
function arrivalOrder(a: Msg, b: Msg): number {
  return a.secs - b.secs || a.usecs - b.usecs || a.seq - b.seq || (a.pop3 < b.pop3 ? -1 : a.pop3 > b.pop3 ? 1 : 0);
}

async function folderStamp(dir: string): Promise<string> {
  return dirStamp(await fsp.stat(dir, { bigint: true }).catch(() => null));
}

async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Maildir convention: tmp/ files older than this are leftovers of a crash. */
const STALE_TMP_MS = 36 * 3600 * 1000;

async function sweepTmp(tmp: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdirSafe(tmp)) {
    const p = path.join(tmp, name);
    try {
      const st = await fsp.stat(p);
      if (st.isFile() && now - st.mtimeMs > STALE_TMP_MS) await fsp.unlink(p);
    } catch {
      // gone already, or not ours to remove
    }
  }
}
