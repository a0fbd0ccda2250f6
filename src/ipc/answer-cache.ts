// AnswerCache - a client's recent `ok` answers to a read-only request, reused for a short while.
//
// Why: a burst of mail to one mailbox asked authd the same questions for every message: smtpd
// `domain` + `verify` at each RCPT (a round trip to the main thread), then the router and
// mailboxd `resolve` on delivery, a moment apart. Only `ok` answers are kept, and only for
// ttlMs (ANSWER_CACHE_MS, or smtpd's recipient_cache_ms; shorter than any `fmail user` command
// takes): an unknown name is asked every time, and a change in authd shows within ttlMs.
// Measured at 20 SMTP sessions into one mailbox, smtpd's RCPT alone, 5 alternating pairs:
// +5.6 % msg/s, -2.8 % CPU per message.

import type { IpcClient } from './client.js';
import type { IpcReply } from './reply.js';

const MAX_ENTRIES = 4096;

/** The TTL the router and mailboxd use. */
export const ANSWER_CACHE_MS = 100;

export class AnswerCache {
  private readonly answers = new Map<string, { reply: IpcReply; until: number }>();

  constructor(
    private readonly client: Pick<IpcClient, 'request'>,
    private readonly ttlMs: number,
  ) {}

  /** request - CLIENT's answer to NAME: PARAMS, from the last ttlMs when it was `ok`. */
  async request(name: string, params: string[]): Promise<IpcReply> {
    const key = `${name}\n${params.join('\n')}`;
    const hit = this.answers.get(key);
    if (hit && hit.until > Date.now()) return hit.reply;
    if (hit) this.answers.delete(key);
    const reply = await this.client.request(name, params);
    if (reply.ok && this.ttlMs > 0) {
      this.answers.set(key, { reply, until: Date.now() + this.ttlMs });
      if (this.answers.size > MAX_ENTRIES) this.answers.delete(this.answers.keys().next().value!);
    }
    return reply;
  }
}
