// AnswerCache - a client's recent `ok` answers to a read-only request, reused for a short while.
//
// Why: every message delivered asked authd `resolve: RCPT` twice (the router, then mailboxd's
// check of the mailbox user), the same question a moment apart. Only `ok` answers are kept,
// and only for ttlMs (100 ms where used, shorter than any `fmail user` command takes): an
// unknown name is asked every time, and a change in authd shows within ttlMs.

import type { IpcClient } from './client.js';
import type { IpcReply } from './reply.js';

const MAX_ENTRIES = 4096;

export class AnswerCache {
  private readonly answers = new Map<string, { reply: IpcReply; until: number }>();

  constructor(
    private readonly client: IpcClient,
    private readonly ttlMs: number,
  ) {}

  /** request - CLIENT's answer to NAME: PARAMS, from the last ttlMs when it was `ok`. */
  async request(name: string, params: string[]): Promise<IpcReply> {
    const key = `${name}\n${params.join('\n')}`;
    const hit = this.answers.get(key);
    const now = Date.now();
    if (hit && hit.until > now) return hit.reply;
    if (hit) this.answers.delete(key);
    const reply = await this.client.request(name, params);
    if (reply.ok && this.ttlMs > 0) {
      this.answers.set(key, { reply, until: Date.now() + this.ttlMs });
      if (this.answers.size > MAX_ENTRIES) this.answers.delete(this.answers.keys().next().value!);
    }
    return reply;
  }
}
