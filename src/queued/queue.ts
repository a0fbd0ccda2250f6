// Queue - one named queue: its folders, its in-memory index, and the moves between states.
//
// On disk (DATA/queue/NAME/):
//   tmp/QID    a slot handed out by `slot`; the client writes it. Never popped.
//   msg/QID    a pushed message (ready, leased or deferred). `push` renames it here and fsyncs
//              msg/ in one job shared by every push in flight (group commit, shared/durable.ts);
//              the file itself is fsynced once, by its writer (or here if the writer says not).
//              A restart recovers FIFO order from the qids (they begin with the slot time).
//   journal/   messages handed over IPC (`put`): append-only segments with group commit, the
//              durable copy (see journal.ts); cache/QID is the file `pop` hands out for them,
//              written by that pop (`take` hands out the bytes instead and writes no file).
//   meta/QID   only for messages deferred at least once: {attempts, reason, notBefore}, written
//              atomically. No meta = plain ready message.
// Leases live only in memory: a restart makes every leased message ready again, which is what
// an expired lease does too (at-least-once delivery).
//
// In memory: a FIFO deque of ready ids (pop is O(1) whatever the length), with tombstones for
// ids an administrator removed from its middle; maps for slots, leases, and deferred ids.

import { existsSync, lstatSync, promises as fsp, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';

import { errnoStatus } from '../ipc/index.js';
import { DirSyncError, DirSyncer, readFileOnce, removeFile, writeFileAtomic } from '../shared/durable.js';
import type { Logger } from '../shared/log.js';
import { newQueueId } from '../mail/queue-id.js';
import { Deque } from './deque.js';
import { rewriteCopy } from './cache-copy.js';
import { Journal } from './journal.js';
import { isQid } from './names.js';
import { type ListedMessage, type MessageData, type Meta, type MsgState, QueueError, fileData } from './backend.js';

export { QueueError, type ListedMessage, type Meta, type MsgState } from './backend.js';

export interface QueueOptions {
  leaseMs: number;
  slotGraceMs: number;
  logger: Logger;
  /** Called when messages became ready and the queue was empty or a pop had found it empty. */
  onNewMail(queue: { readonly name: string }): void;
}

export class Queue {
  readonly dir: string;
  readonly tmpDir: string;
  readonly msgDir: string;
  readonly metaDir: string;
  readonly cacheDir: string;
  private journal!: Journal;
  private readonly msgSync: DirSyncer;
  private readonly slots = new Map<string, number>();
  private readonly ready = new Deque<string>();
  private readonly tombstones = new Set<string>();
  private readonly leased = new Map<string, number>();
  /** Which IPC connection holds each lease (0 = unknown). */
  private readonly owners = new Map<string, number>();
  private readonly deferred = new Set<string>();
  private readonly meta = new Map<string, Meta>();
  /** Journaled messages whose cache copy a `pop` wrote in this run (trusted; unlinked at done). */
  private readonly copied = new Set<string>();
  /** Armed: the next mail that becomes ready triggers an alert (a pop found the queue empty). */
  private armed = true;

  private constructor(
    readonly name: string,
    spool: string,
    private readonly opts: QueueOptions,
  ) {
    this.dir = path.join(spool, name);
    this.tmpDir = path.join(this.dir, 'tmp');
    this.msgDir = path.join(this.dir, 'msg');
    this.metaDir = path.join(this.dir, 'meta');
    this.cacheDir = path.join(this.dir, 'cache');
    this.msgSync = new DirSyncer();
  }

  /** open - create the folders if needed and rebuild the index from them (recovery). */
  static async open(spool: string, name: string, opts: QueueOptions): Promise<Queue> {
    const q = new Queue(name, spool, opts);
    for (const d of [q.tmpDir, q.msgDir, q.metaDir, q.cacheDir]) await fsp.mkdir(d, { recursive: true });
    q.recover();
    return q;
  }

  get readyCount(): number {
    return this.ready.length - this.tombstones.size;
  }

  counts(): Record<'ready' | 'leased' | 'deferred' | 'slots', number> {
    return { ready: this.readyCount, leased: this.leased.size, deferred: this.deferred.size, slots: this.slots.size };
  }

  /** msgPath - the file a consumer reads: msg/QID, or cache/QID for a journaled message. */
  msgPath(qid: string): string {
    return path.join(this.journal.has(qid) ? this.cacheDir : this.msgDir, qid);
  }

  private exists(qid: string): boolean {
    return this.journal.has(qid) || existsSync(path.join(this.msgDir, qid));
  }

  /**
   * put - the message bytes themselves (IPC `put`, into the slot name P): journaled with group
   * commit, so many puts share one fdatasync; resolves once they are on disk.
   */
  async put(p: string, data: Buffer[]): Promise<string> {
    const qid = this.qidIn(p, this.tmpDir);
    if (!qid || !this.slots.has(qid)) throw new QueueError(`not an open slot of queue ${this.name}: ${p}`);
    const issued = this.slots.get(qid)!;
    this.slots.delete(qid);
    try {
      await this.journal.append(qid, data);
    } catch (err) {
      this.slots.set(qid, issued);
      throw new QueueError(`put failed: ${(err as Error).message}`, errnoStatus(err));
    }
    this.makeReady([qid]);
    return qid;
  }

  /**
   * prepare - before `pop` hands out P: a journaled message gets its cache copy, written aside
   * and renamed (a copy left by an earlier run is not trusted, and an earlier lease's reader
   * may still have the old one open).
   */
  async prepare(p: string): Promise<void> {
    const qid = path.basename(p);
    if (!this.journal.has(qid) || this.copied.has(qid)) return;
    await rewriteCopy(p, await this.journal.read(qid));
    this.copied.add(qid);
  }

  /** copy - the leased message P (handed out by `take`) gets its file at P, as `pop` would. */
  async copy(p: string): Promise<void> {
    this.leasedQid(p);
    await this.prepare(p);
  }

  /**
   * take - `pop` with the bytes: the oldest ready message leased to OWNER, its PATH (for done,
   * defer, renew) and, when it is at most MAX bytes, its bytes (memory or journal; a msg/ file
   * is read). A journaled message gets no cache copy. null when the queue is empty.
   */
  async take(max: number, owner: number, now = Date.now()): Promise<{ path: string; data: Buffer | null } | null> {
    const p = this.pop(now, owner);
    if (p === null) return null;
    const qid = path.basename(p);
    try {
      if (this.journal.has(qid)) {
        const data = await this.journal.read(qid);
        if (data.length <= max) return { path: p, data };
        await this.prepare(p);
        return { path: p, data: null };
      }
      return { path: p, data: await readFileOnce(p, max) };
    } catch (err) {
      this.abandon(p, owner);
      throw new QueueError(`cannot read ${qid}: ${(err as Error).message}`, '4.3.0');
    }
  }

  /** close - the journal's pending writes out and its segment marked closed. */
  async close(): Promise<void> {
    await this.journal.close();
  }

  /** slot - a fresh file name in tmp/ for the client to write. */
  slot(now = Date.now()): string {
    const qid = newQueueId(now);
    this.slots.set(qid, now);
    return path.join(this.tmpDir, qid);
  }

  /**
   * push - make a written slot durable and ready; resolves once file and folder are fsynced.
   * SYNCED: the writer already fdatasynced the file (smtpd and spoolMessage do), so it is not
   * opened again; otherwise (a seed client that only wrote and closed it) it is fsynced here.
   * Either way the rename and the msg/ fsync are one job shared by every push in flight.
   */
  async push(p: string, synced = false): Promise<string> {
    const qid = this.qidIn(p, this.tmpDir);
    if (!qid || !this.slots.has(qid)) throw new QueueError(`not an open slot of queue ${this.name}: ${p}`);
    const issued = this.slots.get(qid)!;
    // Taken out at once, so a second push of the same slot fails even while this one runs.
    this.slots.delete(qid);
    try {
      await this.msgSync.sync(this.msgDir, { from: path.join(this.tmpDir, qid), to: this.msgPath(qid), syncFile: !synced });
    } catch (err) {
      if (err instanceof DirSyncError) {
        // Renamed but the folder flush failed: the message is queued, just not known durable.
        this.makeReady([qid]);
        throw new QueueError(`push not durable: ${err.message}`, errnoStatus(err.cause ?? err));
      }
      this.slots.set(qid, issued);
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'EINVAL') throw new QueueError(`slot file missing or not a regular file: ${p}`);
      throw new QueueError(`push failed: ${e.message}`, errnoStatus(err));
    }
    this.makeReady([qid]);
    return qid;
  }

  /** pop - lease the oldest ready message to OWNER; null (and alerts armed) when there is none. */
  pop(now = Date.now(), owner = 0): string | null {
    for (;;) {
      const qid = this.ready.shift();
      if (qid === undefined) {
        this.armed = true;
        return null;
      }
      if (this.tombstones.delete(qid)) continue;
      this.leased.set(qid, now + this.opts.leaseMs);
      this.owners.set(qid, owner);
      return this.msgPath(qid);
    }
  }

  /**
   * abandon - the connection that popped P went away without `done` or `defer` (the consumer
   * crashed): end its lease now instead of after lease_s; the next tick makes it ready again.
   * A lease since handed to someone else is left alone.
   */
  abandon(p: string, owner: number): void {
    const qid = path.basename(p);
    if (this.leased.has(qid) && this.owners.get(qid) === owner) this.leased.set(qid, 0);
  }

  /**
   * renew - the holder of P's lease is still at work: the lease now ends SECONDS from now
   * (default lease_s), never earlier than it did. Only the connection that popped P may renew.
   * Returns the seconds the lease has left.
   */
  renew(p: string, owner: number, seconds?: number, now = Date.now()): number {
    const qid = this.leasedQid(p);
    const holder = this.owners.get(qid) ?? 0;
    if (holder !== 0 && owner !== 0 && holder !== owner) throw new QueueError(`not a leased message of queue ${this.name}: ${p}`);
    const until = Math.max(this.leased.get(qid)!, now + (seconds === undefined ? this.opts.leaseMs : Math.round(seconds * 1000)));
    this.leased.set(qid, until);
    return Math.max(0, (until - now) / 1000);
  }

  /** done - the popper finished: remove the message for good. */
  async done(p: string): Promise<string> {
    const qid = this.leasedQid(p);
    this.leased.delete(qid);
    this.owners.delete(qid);
    // Only a deferred message has a meta file; unlink, not rm, saves rimraf's extra lstat.
    if (this.meta.delete(qid)) await removeFile(path.join(this.metaDir, qid));
    const file = this.msgPath(qid); // before endJournaled: the path depends on the journal
    if (!this.journal.has(qid) || this.endJournaled(qid)) await removeFile(file);
    // No directory fsync: if a crash forgets this unlink the message is delivered again
    // (at-least-once, like Postfix), and `done` stays off the group-commit path of `push`.
    return qid;
  }

  /**
   * endJournaled - a journaled QID is finished (its D record); true when it may have a cache
   * file to unlink: one a pop wrote in this run, or one an earlier run left.
   */
  private endJournaled(qid: string): boolean {
    const hasFile = this.copied.delete(qid) || this.journal.recovered(qid);
    this.journal.done(qid);
    return hasFile;
  }

  /** defer - back to the queue after SECONDS, keeping REASON and counting the attempt. */
  async defer(p: string, seconds: number, reason: string, now = Date.now()): Promise<Meta> {
    const qid = this.leasedQid(p);
    this.leased.delete(qid);
    this.owners.delete(qid);
    const m: Meta = { attempts: (this.meta.get(qid)?.attempts ?? 0) + 1, reason, notBefore: now + Math.round(seconds * 1000) };
    try {
      await writeFileAtomic(path.join(this.metaDir, qid), JSON.stringify(m));
    } catch (err) {
      this.makeReady([], [qid]);
      throw new QueueError(`defer failed: ${(err as Error).message}`, errnoStatus(err));
    }
    this.meta.set(qid, m);
    this.deferred.add(qid);
    return m;
  }

  /** tick - expire leases and deferrals, remove stale slots. */
  tick(now = Date.now()): void {
    const back: string[] = [];
    for (const [qid, until] of this.leased) {
      if (until > now) continue;
      this.leased.delete(qid);
      this.owners.delete(qid);
      if (this.exists(qid)) {
        back.push(qid);
        this.opts.logger.warn({ event: 'queued.lease_expired', qid, queue: this.name }, 'lease expired; message ready again');
      }
    }
    const due: string[] = [];
    for (const qid of this.deferred) {
      if ((this.meta.get(qid)?.notBefore ?? 0) <= now) due.push(qid);
    }
    for (const qid of due) this.deferred.delete(qid);
    // A message whose popper vanished goes back to the head of the line; due ones to the tail.
    this.makeReady(due, back);
    for (const [qid, issued] of this.slots) {
      if (now - issued < this.opts.slotGraceMs) continue;
      this.slots.delete(qid);
      try {
        unlinkSync(path.join(this.tmpDir, qid));
      } catch {
        // Never written: nothing to remove.
      }
      this.opts.logger.info({ event: 'queued.slot_expired', qid, queue: this.name }, 'stale slot removed');
    }
  }

  /** state - where a message is, or null if this queue does not hold it. */
  state(qid: string): MsgState | null {
    if (this.slots.has(qid)) return 'slot';
    if (this.leased.has(qid)) return 'leased';
    if (this.deferred.has(qid)) return 'deferred';
    if (!this.tombstones.has(qid) && this.exists(qid)) return 'ready';
    return null;
  }

  /** flush - every deferred message ready now (persisted); returns how many. */
  async flush(): Promise<number> {
    const ids = [...this.deferred];
    await Promise.all(ids.map((qid) => this.release(qid)));
    return ids.length;
  }

  /** requeue - a deferred or leased message ready now; a ready one stays as it is. */
  async requeue(qid: string): Promise<boolean> {
    const st = this.state(qid);
    if (st === 'deferred') await this.release(qid);
    else if (st === 'leased') {
      this.leased.delete(qid);
      this.makeReady([], [qid]);
    } else if (st !== 'ready') return false;
    return true;
  }

  /** remove - delete a message whatever its state (the administrator's `delete`). */
  async remove(qid: string): Promise<boolean> {
    const st = this.state(qid);
    if (st === null) return false;
    if (st === 'slot') {
      this.slots.delete(qid);
      await fsp.rm(path.join(this.tmpDir, qid), { force: true });
      return true;
    }
    if (st === 'ready') this.tombstones.add(qid);
    this.leased.delete(qid);
    this.deferred.delete(qid);
    this.meta.delete(qid);
    await fsp.rm(path.join(this.metaDir, qid), { force: true });
    const file = this.msgPath(qid);
    if (this.journal.has(qid)) {
      if (this.endJournaled(qid)) await removeFile(file);
      return true;
    }
    await fsp.rm(file, { force: true });
    await this.msgSync.sync(this.msgDir);
    return true;
  }

  /** list - up to LIMIT messages (ready in pop order, then leased, deferred, slots), with sizes. */
  async list(limit: number): Promise<ListedMessage[]> {
    const picked: Array<[string, MsgState]> = [];
    const take = (qid: string, state: MsgState): boolean => {
      if (picked.length >= limit) return false;
      picked.push([qid, state]);
      return true;
    };
    for (const qid of this.ready) if (!this.tombstones.has(qid) && !take(qid, 'ready')) break;
    for (const qid of this.leased.keys()) if (!take(qid, 'leased')) break;
    for (const qid of this.deferred) if (!take(qid, 'deferred')) break;
    for (const qid of this.slots.keys()) if (!take(qid, 'slot')) break;
    return Promise.all(
      picked.map(async ([qid, state]) => {
        const file = state === 'slot' ? path.join(this.tmpDir, qid) : this.msgPath(qid);
        const st = await fsp.stat(file).catch(() => null);
        return { qid, queue: this.name, state, time: st ? st.mtimeMs : NaN, size: st ? st.size : 0, meta: this.meta.get(qid) };
      }),
    );
  }

  /**
   * read - a queued message's bytes (not a slot's): from the journal for a `put` message (its
   * cache copy may be stale after a restart), else a stream of msg/QID.
   */
  async read(qid: string): Promise<MessageData | null> {
    const st = this.state(qid);
    if (st === null || st === 'slot') return null;
    if (this.journal.has(qid)) {
      const data = await this.journal.read(qid);
      return { size: data.length, body: data };
    }
    return fileData(path.join(this.msgDir, qid));
  }

  /** filePath - the file behind a message in any state. */
  filePath(qid: string): string {
    return this.slots.has(qid) ? path.join(this.tmpDir, qid) : this.msgPath(qid);
  }

  // A deferred message ready now, on disk too (so a restart does not defer it again).
  private async release(qid: string): Promise<void> {
    const m = this.meta.get(qid);
    if (m) {
      m.notBefore = 0;
      await writeFileAtomic(path.join(this.metaDir, qid), JSON.stringify(m));
    }
    if (this.deferred.delete(qid)) this.makeReady([qid]);
  }

  // makeReady - TAIL ids at the end of the line, HEAD ids at its front; alert if it was empty.
  private makeReady(tail: string[], head: string[] = []): void {
    const wasEmpty = this.readyCount <= 0;
    for (let i = head.length - 1; i >= 0; i--) this.ready.unshift(head[i]!);
    for (const qid of tail) this.ready.push(qid);
    if (tail.length + head.length > 0 && (wasEmpty || this.armed)) {
      this.armed = false;
      this.opts.onNewMail(this);
    }
  }

  private leasedQid(p: string): string {
    const qid = this.qidIn(p, this.msgDir) ?? this.qidIn(p, this.cacheDir);
    if (!qid || !this.leased.has(qid) || this.msgPath(qid) !== p) throw new QueueError(`not a leased message of queue ${this.name}: ${p}`);
    return qid;
  }

  // The queue id in PATH if PATH is exactly DIR/QID as we hand it out; anything else is null.
  private qidIn(p: string, dir: string): string | null {
    if (path.dirname(p) !== dir) return null;
    const qid = path.basename(p);
    return isQid(qid) && path.join(dir, qid) === p ? qid : null;
  }

  // recover - rebuild the index from the folders after a start (clean or not).
  private recover(): void {
    const now = Date.now();
    // FIFO order is the qid's: it starts with the slot time in milliseconds, fixed-width, so
    // names sort as times do. No stat per file (a million messages recover in one readdir).
    const { journal, live } = Journal.open(path.join(this.dir, 'journal'), (msg) =>
      this.opts.logger.error({ event: 'queued.journal_damaged', queue: this.name }, msg),
    );
    this.journal = journal;
    const names = readdirSync(this.msgDir).filter(isQid).concat(live).sort();
    // Cache copies of messages no longer in the journal (done before a crash forgot the unlink).
    for (const f of readdirSync(this.cacheDir)) if (!journal.has(f)) unlinkSync(path.join(this.cacheDir, f));
    for (const f of readdirSync(this.metaDir)) {
      const full = path.join(this.metaDir, f);
      if (!isQid(f)) {
        // A leftover temp file of an interrupted atomic write.
        if (f.startsWith('.')) unlinkSync(full);
        continue;
      }
      if (!this.exists(f)) {
        unlinkSync(full);
        continue;
      }
      try {
        const m = JSON.parse(readFileSync(full, 'utf8')) as Meta;
        this.meta.set(f, { attempts: Number(m.attempts) || 0, reason: String(m.reason ?? ''), notBefore: Number(m.notBefore) || 0 });
        if ((Number(m.notBefore) || 0) > now) this.deferred.add(f);
      } catch {
        // Unreadable meta: treat the message as plain ready rather than lose it.
      }
    }
    for (const qid of names) if (!this.deferred.has(qid)) this.ready.push(qid);
    for (const f of readdirSync(this.tmpDir)) {
      const full = path.join(this.tmpDir, f);
      if (!isQid(f)) continue;
      if (this.exists(f)) {
        // Both names survived a crash mid-rename: the pushed one wins.
        unlinkSync(full);
        continue;
      }
      // A slot written before the restart may still be pushed; its grace runs from its mtime.
      let since = now;
      try {
        const st = lstatSync(full);
        since = Math.min(now, st.mtimeMs);
      } catch {
        continue;
      }
      this.slots.set(f, since);
    }
    this.armed = true;
    this.opts.logger.info(
      { event: 'queued.recovered', queue: this.name, ...this.counts(), ms: Date.now() - now },
      'queue recovered',
    );
  }
}
