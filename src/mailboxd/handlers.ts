// The IPC message table of mailboxd: store, list, retr, dele.
//
// Numbering: `list` fixes, for that connection and user, the order N -> message; `retr` and
// `dele` use it until the connection's next `list` of that user (a `dele` leaves a hole, it
// does not renumber). Requests of one connection run one after another ("connection order"),
// so a pipelined `list` then `retr: U ; 1` sees the numbering that list made.

import type { Readable } from 'node:stream';

import type { Logger } from 'pino';

import { type HandlerSpec, type IpcClient, type IpcConnection, type Reply, errnoStatus, error, failure, multiLine, ok, rawData } from '../ipc/index.js';
import type { MailboxdConfig } from './config.js';
import { deliveredToHeader, withDeliveredTo } from './delivered-to.js';
import { DirSyncer, Maildir } from './maildir.js';
import type { MaildirEntry } from './maildir-name.js';
import { checkUser, safeUser, userDir } from './users.js';

const CHAIN = 'mailboxd.chain';
const SMALL_MESSAGE = 128 * 1024;
const NUMBERING = 'mailboxd.numbering';

/** Numbering of one user's messages on one connection; null marks a deleted number. */
type Numbering = Map<string, Array<MaildirEntry | null>>;

export class MailboxService {
  private readonly boxes = new Map<string, Maildir>();
  private readonly syncer = new DirSyncer();
  /** Bytes being stored right now per user, counted against the quota before they land. */
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly root: string,
    private readonly host: string,
    private limits: Pick<MailboxdConfig, 'max_message_size' | 'quota_bytes'>,
    private readonly authd: IpcClient,
    private readonly logger: Logger,
  ) {}

  /** setLimits - new size/quota limits (SIGHUP). */
  setLimits(limits: Pick<MailboxdConfig, 'max_message_size' | 'quota_bytes'>): void {
    this.limits = limits;
  }

  /** handlers - the message table. */
  handlers(): Record<string, HandlerSpec> {
    return {
      store: { params: [3, 4], rawInput: true, handle: (ctx) => this.store(ctx.params, ctx.send, ctx.receiveRaw) },
      list: { params: 1, handle: (ctx) => inOrder(ctx.conn, () => this.list(ctx.conn, ctx.params[0]!)) },
      retr: { params: 2, handle: (ctx) => inOrder(ctx.conn, () => this.retr(ctx.conn, ctx.params[0]!, ctx.params[1]!)) },
      dele: { params: 2, handle: (ctx) => inOrder(ctx.conn, () => this.dele(ctx.conn, ctx.params[0]!, ctx.params[1]!)) },
    };
  }

  private box(user: string): Maildir {
    let b = this.boxes.get(user);
    if (!b) {
      b = new Maildir(userDir(this.root, user), this.host, this.syncer);
      this.boxes.set(user, b);
    }
    return b;
  }

  /** store - every check before the go-ahead; then tmp/, fsync, new/, fsync, `ok`. */
  private async store(
    params: string[],
    send: (name: string, params?: string[]) => void,
    receiveRaw: (len: number) => Readable,
  ): Promise<Reply> {
    const [to, recipient, lengthText] = params as [string, string, string];
    if (!/^\d{1,15}$/.test(lengthText)) return failure('5.5.4', 'bad length');
    const length = Number(lengthText);
    if (length > this.limits.max_message_size) return failure('5.3.4', `message too large: limit is ${this.limits.max_message_size} bytes`);
    // RECIPIENT becomes a header line: no control characters (no header injection).
    if (recipient.length === 0 || recipient.length > 998 || /[\x00-\x1f\x7f]/.test(recipient)) return failure('5.1.3', 'bad recipient');
    const check = await checkUser(this.authd, to);
    if (!check.ok) return failure(check.status, check.message);
    const user = check.user;
    const header = deliveredToHeader(recipient);
    const size = length + header.length;
    const box = this.box(user);

    let reserved = 0;
    try {
      if (this.limits.quota_bytes > 0) {
        const used = (await box.usage()) + (this.inFlight.get(user) ?? 0);
        if (used + size > this.limits.quota_bytes) {
          this.logger.info({ event: 'mailboxd.quota_exceeded', user, used, size }, 'quota exceeded');
          return failure('5.2.2', 'quota exceeded');
        }
        reserved = size;
        this.inFlight.set(user, (this.inFlight.get(user) ?? 0) + size);
      }
      send('ok');
      const raw = receiveRaw(length);
      // Not destroyed on an early exit: the IPC server then skips the rest, keeping framing.
      const source = raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
      try {
        const entry = await box.deliver(withDeliveredTo(source, header), size);
        this.logger.info({ event: 'mailboxd.stored', user, recipient, size, uid: entry.uid }, 'stored');
        return ok();
      } catch (err) {
        // A full disk (4.3.1) or any other write failure: the router defers and tries again.
        this.logger.warn({ event: 'mailboxd.store_failed', user, recipient, err: String(err) }, 'store failed');
        return failure(errnoStatus(err), 'store failed');
      }
    } finally {
      if (reserved) this.inFlight.set(user, (this.inFlight.get(user) ?? 0) - reserved);
    }
  }

  /** list - `ok: COUNT`, `mailinfo: N ; SIZE ; UID` ..., `ok`; fixes this connection's numbering. */
  private async list(conn: IpcConnection, rawUser: string): Promise<Reply> {
    const check = await checkUser(this.authd, rawUser);
    if (!check.ok) return error(check.message);
    const entries = await this.box(check.user).list();
    numbering(conn).set(check.user, entries);
    return multiLine(entries.map((e, i) => ({ name: 'mailinfo', params: [String(i + 1), String(e.size), e.uid] })));
  }

  /** entry - the message numbered N for USER on this connection (numbered now if never listed). */
  private async entry(conn: IpcConnection, rawUser: string, n: string): Promise<{ user: string; e: MaildirEntry } | string> {
    const table = numbering(conn);
    // A user this connection has numbered already passed checkUser: no authd round trip per retr.
    const known = safeUser(rawUser);
    let user = known !== null && table.has(known) ? known : null;
    let list = user ? table.get(user) : undefined;
    if (!user || !list) {
      const check = await checkUser(this.authd, rawUser);
      if (!check.ok) return check.message;
      user = check.user;
      list = await this.box(user).list();
      table.set(user, list);
    }
    if (!/^\d{1,9}$/.test(n)) return 'bad message number';
    const e = list[Number(n) - 1];
    if (!e) return `no such message ${n}`;
    return { user, e };
  }

  private async retr(conn: IpcConnection, rawUser: string, n: string): Promise<Reply> {
    const found = await this.entry(conn, rawUser, n);
    if (typeof found === 'string') return error(found);
    const opened = await this.box(found.user).open(found.e);
    if (!opened) return error(`no such message ${n}`);
    if (opened.size <= SMALL_MESSAGE) {
      // Most mail is small: one read and a close beat a stream's machinery.
      try {
        const buf = Buffer.allocUnsafe(opened.size);
        const { bytesRead } = await opened.fh.read(buf, 0, opened.size, 0);
        return rawData(buf.subarray(0, bytesRead));
      } finally {
        await opened.fh.close();
      }
    }
    // Streamed from the file: constant memory whatever the size; the stream closes the handle.
    return rawData(opened.fh.createReadStream({ highWaterMark: 256 * 1024 }), opened.size);
  }

  private async dele(conn: IpcConnection, rawUser: string, n: string): Promise<Reply> {
    const found = await this.entry(conn, rawUser, n);
    if (typeof found === 'string') return error(found);
    const removed = await this.box(found.user).remove(found.e);
    numbering(conn).get(found.user)![Number(n) - 1] = null;
    if (!removed) return error(`no such message ${n}`);
    this.logger.info({ event: 'mailboxd.deleted', user: found.user, uid: found.e.uid }, 'deleted');
    return ok();
  }
}

function numbering(conn: IpcConnection): Numbering {
  let t = conn.data.get(NUMBERING) as Numbering | undefined;
  if (!t) {
    t = new Map();
    conn.data.set(NUMBERING, t);
  }
  return t;
}

/** inOrder - run `fn` after the connection's previous mailbox request has finished. */
function inOrder<T>(conn: IpcConnection, fn: () => Promise<T>): Promise<T> {
  const prev = (conn.data.get(CHAIN) as Promise<unknown> | undefined) ?? Promise.resolve();
  const next = prev.catch(() => {}).then(fn);
  conn.data.set(CHAIN, next);
  return next;
}
