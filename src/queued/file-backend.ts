// FileBackend - the default backend: named queues of files under DATA/queue (spool.ts, queue.ts,
// journal.ts), indexed in memory. This file only maps the QueueBackend calls onto them.

import path from 'node:path';

import { queueSize } from '../shared/metrics.js';
import { type ListedMessage, type MessageData, fileData, type Meta, type QueueBackend, type QueueCounts, QueueError } from './backend.js';
import { isQid } from './names.js';
import { MemoryDirectory } from './server-directory.js';
import type { Queue, QueueOptions } from './queue.js';
import { Spool } from './spool.js';

export class FileBackend implements QueueBackend {
  private readonly spool: Spool;
  readonly directory = new MemoryDirectory();

  private constructor(dir: string, opts: QueueOptions) {
    this.spool = new Spool(dir, opts);
  }

  /** open - the spool at DIR, every queue in it recovered. */
  static async open(dir: string, opts: QueueOptions): Promise<FileBackend> {
    const b = new FileBackend(dir, opts);
    await b.spool.recoverAll();
    return b;
  }

  async slot(queue: string): Promise<string> {
    return (await this.spool.get(queue, true))!.slot();
  }

  isSlot(queue: string, p: string): boolean {
    return this.spool.peek(queue)?.state(path.basename(p)) === 'slot';
  }

  push(queue: string, p: string, synced: boolean): Promise<string> {
    return this.open(queue, p, 'an open slot').push(p, synced);
  }

  put(queue: string, p: string, data: Buffer[]): Promise<string> {
    return this.open(queue, p, 'an open slot').put(p, data);
  }

  async pop(queue: string, owner: number): Promise<string | null> {
    const q = this.spool.peek(queue);
    const p = q?.pop(Date.now(), owner) ?? null;
    if (p === null || !q) return null;
    try {
      await q.prepare(p);
    } catch (err) {
      q.abandon(p, owner);
      throw new QueueError(`cannot read ${path.basename(p)} from the journal: ${(err as Error).message}`, '4.3.0');
    }
    return p;
  }

  async take(queue: string, owner: number, max: number): Promise<{ path: string; data: Buffer | null } | null> {
    return (await this.spool.peek(queue)?.take(max, owner)) ?? null;
  }

  async copy(queue: string, p: string): Promise<void> {
    const q = this.open(queue, p, 'a leased message');
    try {
      // Only the exact path pop would hand out, of a leased message, is ever written.
      await q.copy(p);
    } catch (err) {
      if (err instanceof QueueError) throw err;
      throw new QueueError(`cannot write ${path.basename(p)}: ${(err as Error).message}`, '4.3.0');
    }
  }

  abandon(queue: string, p: string, owner: number): void {
    this.spool.peek(queue)?.abandon(p, owner);
  }

  done(queue: string, p: string): Promise<string> {
    return this.open(queue, p, 'a leased message').done(p);
  }

  async renew(queue: string, p: string, owner: number, seconds?: number): Promise<number> {
    return this.open(queue, p, 'a leased message').renew(p, owner, seconds);
  }

  defer(queue: string, p: string, seconds: number, reason: string): Promise<Meta> {
    return this.open(queue, p, 'a leased message').defer(p, seconds, reason);
  }

  async read(queue: string, pathOrQid: string): Promise<MessageData | null> {
    const q = this.spool.peek(queue);
    if (!q) return null;
    const qid = isQid(pathOrQid) ? pathOrQid : path.basename(pathOrQid);
    // A path must be exactly the one pop hands out (msg/QID or cache/QID), nothing else.
    if (!isQid(qid) || (pathOrQid !== qid && q.msgPath(qid) !== pathOrQid)) return null;
    return q.read(qid);
  }

  async hasReady(queue: string): Promise<boolean> {
    return (this.spool.peek(queue)?.readyCount ?? 0) > 0;
  }

  tick(now: number): void {
    for (const q of this.spool.all()) {
      q.tick(now);
      for (const [state, n] of Object.entries(q.counts())) queueSize.set({ queue: q.name, state }, n);
    }
  }

  async stats(): Promise<Array<{ name: string; counts: QueueCounts }>> {
    return this.spool.all().map((q) => ({ name: q.name, counts: q.counts() }));
  }

  async list(queue: string | undefined, limit: number): Promise<ListedMessage[]> {
    const queues = queue === undefined ? this.spool.all() : [this.spool.peek(queue)].filter((q) => q !== undefined);
    const out: ListedMessage[] = [];
    for (const q of queues) out.push(...(await q.list(limit)));
    return out;
  }

  async show(qid: string): Promise<MessageData | null> {
    const q = this.spool.find(qid);
    if (!q) return null;
    return q.state(qid) === 'slot' ? fileData(q.filePath(qid)) : q.read(qid);
  }

  async flush(queue: string | undefined): Promise<number> {
    let n = 0;
    for (const q of this.spool.all()) if (queue === undefined || q.name === queue) n += await q.flush();
    return n;
  }

  async requeue(qid: string): Promise<string | null> {
    const q = this.spool.find(qid);
    return q && (await q.requeue(qid)) ? q.name : null;
  }

  async remove(qid: string): Promise<string | null> {
    const q = this.spool.find(qid);
    return q && (await q.remove(qid)) ? q.name : null;
  }

  async close(): Promise<void> {
    for (const q of this.spool.all()) await q.close();
  }

  // open - the queue for a path-taking message; an unknown queue is the same refusal as an unknown path.
  private open(queue: string, p: string, what: string): Queue {
    const q = this.spool.peek(queue);
    if (!q) throw new QueueError(`not ${what} of queue ${queue}: ${p}`);
    return q;
  }
}
