// Spool - the set of named queues under DATA/queue: opened (recovered) at start, created on
// first use, looked up by name or by queue id.

import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { fsyncDir } from '../shared/durable.js';
import { isQueueName } from './names.js';
import { Queue, type QueueOptions } from './queue.js';

export class Spool {
  private readonly queues = new Map<string, Queue>();
  private readonly opening = new Map<string, Promise<Queue>>();

  constructor(
    readonly dir: string,
    private readonly opts: QueueOptions,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  /** recoverAll - open every queue folder already in the spool. */
  async recoverAll(): Promise<void> {
    for (const name of readdirSync(this.dir)) {
      if (isQueueName(name) && statSync(path.join(this.dir, name)).isDirectory()) await this.get(name, true);
    }
  }

  /** get - the queue NAME; created when CREATE, else null if it does not exist yet. */
  async get(name: string, create: boolean): Promise<Queue | null> {
    const q = this.queues.get(name);
    if (q) return q;
    if (!create && !existsSync(path.join(this.dir, name))) return null;
    let p = this.opening.get(name);
    if (!p) {
      p = (async () => {
        const isNew = !existsSync(path.join(this.dir, name));
        const queue = await Queue.open(this.dir, name, this.opts);
        if (isNew) await fsyncDir(this.dir);
        this.queues.set(name, queue);
        return queue;
      })().finally(() => this.opening.delete(name));
      this.opening.set(name, p);
    }
    return p;
  }

  /** peek - an open queue, without creating or opening it. */
  peek(name: string): Queue | undefined {
    return this.queues.get(name);
  }

  all(): Queue[] {
    return [...this.queues.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** find - the queue holding message QID, or null. */
  find(qid: string): Queue | null {
    for (const q of this.all()) if (q.state(qid) !== null) return q;
    return null;
  }
}
