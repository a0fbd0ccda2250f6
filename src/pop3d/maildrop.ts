// Maildrop - one POP3 session's view of a user's mailbox, all through mailboxd.
//
// The list is taken once at login (RFC 1939: numbers and sizes stay fixed for the session,
// whatever arrives meanwhile); DELE only marks here; commit() sends the `dele`s at QUIT. The
// session owns its own mailboxd connection because mailboxd numbers messages per connection.

import { createHash } from 'node:crypto';

import { type IpcClient, type StreamResult } from '../ipc/index.js';

export interface MessageInfo {
  /** 1-based POP3 message number (= mailboxd's number on this connection). */
  n: number;
  size: number;
  uid: string;
  deleted: boolean;
}

export class MaildropError extends Error {}

/** RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E. */
const UID_RE = /^[\x21-\x7e]{1,70}$/;

export class Maildrop {
  private constructor(
    private readonly mailboxd: IpcClient,
    readonly user: string,
    readonly messages: MessageInfo[],
  ) {}

  /** open - `list: USER`; throws MaildropError when mailboxd refuses. */
  static async open(mailboxd: IpcClient, user: string): Promise<Maildrop> {
    const res = await mailboxd.requestList('list', [user]);
    if (!res.reply.ok) throw new MaildropError(res.reply.params[0] ?? 'list refused');
    const messages = res.items.map((m, i): MessageInfo => {
      const n = Number(m.params[0]);
      const size = Number(m.params[1]);
      if (m.name !== 'mailinfo' || !Number.isSafeInteger(n) || !Number.isSafeInteger(size) || size < 0) {
        throw new MaildropError(`bad mailinfo line ${i + 1}`);
      }
      return { n, size, uid: pop3Uid(m.params[2], n, size), deleted: false };
    });
    return new Maildrop(mailboxd, user, messages);
  }

  /** live - the messages not marked deleted. */
  live(): MessageInfo[] {
    return this.messages.filter((m) => !m.deleted);
  }

  stat(): { count: number; octets: number } {
    let octets = 0;
    const live = this.live();
    for (const m of live) octets += m.size;
    return { count: live.length, octets };
  }

  reset(): void {
    for (const m of this.messages) m.deleted = false;
  }

  /** retr - mailboxd `retr`, the bytes as a stream that must be read to its end. */
  retr(n: number): Promise<StreamResult> {
    return this.mailboxd.requestStream('retr', [this.user, String(n)]);
  }

  /** commit - the UPDATE state: `dele` every marked message (pipelined); counts both ways. */
  async commit(): Promise<{ deleted: number; failed: number }> {
    const marked = this.messages.filter((m) => m.deleted);
    const results = await Promise.allSettled(marked.map((m) => this.mailboxd.request('dele', [this.user, String(m.n)])));
    const deleted = results.filter((r) => r.status === 'fulfilled' && r.value.ok).length;
    return { deleted, failed: marked.length - deleted };
  }
}

/** pop3Uid - mailboxd's UID when it is a valid POP3 unique-id, else a stable digest of it. */
function pop3Uid(uid: string | undefined, n: number, size: number): string {
  if (uid && UID_RE.test(uid)) return uid;
  return createHash('sha256')
    .update(uid ?? `${n}:${size}`)
    .digest('hex')
    .slice(0, 40);
}
