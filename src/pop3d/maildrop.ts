// Maildrop - one POP3 session's view of a user's mailbox, listed through mailboxd.
//
// The list is taken once at login (RFC 1939: numbers and sizes stay fixed for the session,
// whatever arrives meanwhile); DELE only marks here; commit() sends the `dele`s at QUIT. The
// session owns its own mailboxd connection because mailboxd numbers messages per connection.
//
// "Direct read": when mailboxd runs on this host (Unix socket or loopback address) the list is
// asked as `list: USER ; path`, which names the Maildir and each file's place in it, and RETR
// reads the file itself - no IPC round trip per message. Safety: the paths come only from
// mailboxd over the authenticated IPC, for the user who just logged in; each one must be that
// Maildir + `new/` or `cur/` + one name without `/` (never `.`/`..`), the Maildir absolute and
// normalised; files are opened read-only with O_NOFOLLOW (a symlink planted in the Maildir is
// refused) and O_NONBLOCK (a FIFO cannot hang the thread) and read with pread, which only a
// regular file serves (a FIFO or a directory fails the first read, before anything is sent).
// Any doubt (a path refused, the file moved by a flag change or gone, not a regular file) falls
// back to mailboxd's `retr`, which follows moves and refuses what is not a regular file.

import { createHash } from 'node:crypto';
import { constants, openSync } from 'node:fs';
import path from 'node:path';

import { type IpcClient, decimalIn, isLoopback, parseMessage } from '../ipc/index.js';

export interface MessageInfo {
  /** 1-based POP3 message number (= mailboxd's number on this connection). */
  n: number;
  size: number;
  uid: string;
  deleted: boolean;
  /** The file to read directly (`new/NAME` or `cur/NAME` in the Maildir), when mailboxd is on this host (see "direct read"). */
  file: string | undefined;
}

/** A message from mailboxd: streamed. */
export type Body = { ok: true; size: number; stream: AsyncIterable<Buffer> } | { ok: false; error: string };

export class MaildropError extends Error {}

/** RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E. */
const UID_RE = /^[\x21-\x7e]{1,70}$/;
const REL_RE = /^(?:new|cur)\/[^/\0]+$/;
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
// A FIFO planted in the Maildir would block open() (and the whole thread) until a writer came.
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;

export class Maildrop {
  private constructor(
    private readonly mailboxd: IpcClient,
    readonly user: string,
    readonly messages: MessageInfo[],
    /** The Maildir the files are in (absolute, normalised), when mailboxd named one. */
    private readonly root: string | null,
  ) {}

  /** open - `list: USER` (with paths when mailboxd is local); throws MaildropError when refused. */
  static async open(mailboxd: IpcClient, user: string): Promise<Maildrop> {
    const local = isLoopback(mailboxd.address);
    let res = await mailboxd.requestList('list', local ? [user, 'path'] : [user], infoLine);
    // An older mailboxd that knows only `list: USER`.
    if (local && !res.reply.ok && /takes 1 parameter|second parameter/.test(res.reply.params[0] ?? '')) res = await mailboxd.requestList('list', [user], infoLine);
    if (!res.reply.ok) throw new MaildropError(res.reply.params[0] ?? 'list refused');
    const maildir = res.reply.params[1];
    const root = maildir !== undefined && path.isAbsolute(maildir) && path.normalize(maildir) === maildir ? maildir : null;
    const bad = res.items.findIndex((m) => m.n < 0);
    if (bad >= 0) throw new MaildropError(`bad mailinfo line ${bad + 1}`);
    // No usable Maildir: no message can be read directly (and readAhead must not skip them as if they could).
    if (!root) for (const m of res.items) m.file = undefined;
    return new Maildrop(mailboxd, user, res.items, root);
  }

  /** live - the messages not marked deleted. */
  live(): MessageInfo[] {
    return this.messages.filter((m) => !m.deleted);
  }

  stat(): { count: number; octets: number } {
    let octets = 0;
    let count = 0;
    for (const m of this.messages) {
      if (m.deleted) continue;
      count++;
      octets += m.size;
    }
    return { count, octets };
  }

  reset(): void {
    for (const m of this.messages) m.deleted = false;
  }

  /**
   * openFile - the message's file opened for a direct read (read-only, O_NOFOLLOW, O_NONBLOCK):
   * the fd, which the caller reads with pread and closes. No fstat: a symlink fails here, and
   * what else could stand under a message's name fails the first pread (a directory EISDIR, a
   * FIFO ESPIPE), before anything is sent (Session.sendFile). null when it cannot be opened
   * (moved by a flag change, gone, refused): the message is read through mailboxd (body) from
   * then on.
   */
  openFile(m: MessageInfo): number | null {
    if (!m.file || !this.root) return null;
    try {
      return openSync(this.root + '/' + m.file, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch {
      m.file = undefined;
      return null;
    }
  }

  /** body - the message from mailboxd's `retr`: a stream to read to its end. */
  async body(m: MessageInfo): Promise<Body> {
    const res = await this.mailboxd.requestStream('retr', [this.user, String(m.n)]);
    if (!res.reply.ok || !res.stream) return { ok: false, error: res.reply.params[0] ?? 'retr refused' };
    return { ok: true, size: res.size, stream: res.stream };
  }

  /** commit - the UPDATE state: `dele` every marked message (pipelined); counts both ways. */
  async commit(): Promise<{ deleted: number; failed: number }> {
    const marked = this.messages.filter((m) => m.deleted);
    const results = await Promise.allSettled(marked.map((m) => this.mailboxd.request('dele', [this.user, String(m.n)])));
    const deleted = results.filter((r) => r.status === 'fulfilled' && r.value.ok).length;
    return { deleted, failed: marked.length - deleted };
  }
}

const MAILINFO = 'mailinfo: ';
const SEP = ' ; ';

/**
 * infoLine - one `mailinfo: N ; SIZE ; UID [; REL]` line of the `list` answer, read in place: a
 * login to 100,000 messages makes no Message object and parameter array each. A line that is
 * not exactly as mailboxd writes it (encoded parameters, other spacing) takes parseMessage; a
 * bad one gives n = -1 (open() refuses the list).
 */
export function infoLine(line: string): MessageInfo {
  if (line.startsWith(MAILINFO) && !line.includes('%')) {
    const a = line.indexOf(SEP, MAILINFO.length);
    const b = a < 0 ? -1 : line.indexOf(SEP, a + 3);
    const c = b < 0 ? -1 : line.indexOf(SEP, b + 3);
    const d = c < 0 ? -1 : line.indexOf(SEP, c + 3);
    const n = b >= 0 && d < 0 && !line.endsWith(' ') ? decimalIn(line, MAILINFO.length, a) : -1;
    const size = n > 0 ? decimalIn(line, a + 3, b) : -1;
    if (size >= 0) return info(n, size, c < 0 ? line.slice(b + 3) : line.slice(b + 3, c), c < 0 ? undefined : line.slice(c + 3));
  }
  let m;
  try {
    m = parseMessage(line);
  } catch {
    return info(-1, -1, undefined, undefined);
  }
  if (m.name !== 'mailinfo') return info(-1, -1, undefined, undefined);
  const p = m.params;
  return info(decimalIn(p[0] ?? '', 0, p[0]?.length ?? 0), decimalIn(p[1] ?? '', 0, p[1]?.length ?? 0), p[2], p[3]);
}

function info(n: number, size: number, uid: string | undefined, rel: string | undefined): MessageInfo {
  if (n < 1 || size < 0) return { n: -1, size: 0, uid: '', deleted: false, file: undefined };
  // Only new/NAME or cur/NAME, NAME without `/` and not `.` or `..`: never a path out of the Maildir.
  const file = rel !== undefined && REL_RE.test(rel) && !/\/\.\.?$/.test(rel) ? rel : undefined;
  return { n, size, uid: pop3Uid(uid, n, size), deleted: false, file };
}

/** pop3Uid - mailboxd's UID when it is a valid POP3 unique-id, else a stable digest of it. */
function pop3Uid(uid: string | undefined, n: number, size: number): string {
  if (uid && UID_RE.test(uid)) return uid;
  return createHash('sha256')
    .update(uid ?? `${n}:${size}`)
    .digest('hex')
    .slice(0, 40);
}
