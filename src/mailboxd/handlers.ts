// The IPC message table of mailboxd, seed part: store, list, retr, dele (INBOX only, as POP3
// sees it). The folder/UID messages for IMAP are in folder-handlers.ts.
//
// Numbering: `list` fixes, for that connection and user, the order N -> message; `retr` and
// `dele` use it until the connection's next `list` of that user (a `dele` leaves a hole, it
// does not renumber). Requests of one connection run one after another ("connection order"),
// so a pipelined `list` then `retr: U ; 1` sees the numbering that list made.

import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';

import type { Logger } from 'pino';

import { ANSWER_CACHE_MS, AnswerCache } from '../ipc/answer-cache.js';
import { type HandlerSpec, type IpcClient, type IpcConnection, type Reply, encodeParam, errnoStatus, error, failure, ok, preformatted, rawData } from '../ipc/index.js';
import type { MailboxdConfig } from './config.js';
import { deliveredToHeader, deliveredToParts, withDeliveredTo } from './delivered-to.js';
import type { Folder, Msg } from './folder.js';
import { folderHandlers } from './folder-handlers.js';
import { DirSyncer } from '../shared/durable.js';
import { UserBox } from './mailbox.js';
import { type UserCheck, checkUser, safeUser, userDir } from './users.js';
import { Watchers } from './watchers.js';

const CHAIN = 'mailboxd.chain';
const SMALL_MESSAGE = 128 * 1024;
/** A message file is opened without following a symlink or waiting on a FIFO someone planted in the Maildir. */
const MESSAGE_OPEN = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const NUMBERING = 'mailboxd.numbering';
const CHECKED = 'mailboxd.checked';
const QID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const NEEDS_ENCODING = /[%;\r\n]|^\s|\s$/;

/** Numbering of one user's messages on one connection; null marks a deleted number. */
type Numbering = Map<string, Array<Msg | null>>;

export class MailboxService {
  private readonly boxes = new Map<string, UserBox>();
  private readonly syncer = new DirSyncer();
  /** Bytes being stored right now per user, counted against the quota before they land. */
  private readonly inFlight = new Map<string, number>();
  /** Stores in progress per delivery key (exactly-once: the second waits for the first). */
  private readonly storing = new Map<string, Promise<unknown>>();
  readonly watchers: Watchers;
  /** authd's recent `ok` answers, for `store` (the router asked the same a moment before). */
  private readonly resolved: AnswerCache;

  constructor(
    private readonly root: string,
    private readonly host: string,
    private limits: Pick<MailboxdConfig, 'max_message_size' | 'quota_bytes'>,
    private readonly authd: IpcClient,
    readonly logger: Logger,
    secret?: string,
  ) {
    this.resolved = new AnswerCache(authd, ANSWER_CACHE_MS);
    this.watchers = new Watchers(secret, logger, (user, folder) => {
      const f = this.boxes.get(user)?.cachedFolder(folder);
      return f ? { uidnext: f.uidnext, highestModseq: f.highestModseq, count: f.messages().length } : null;
    });
  }

  /** setLimits - new size/quota limits (SIGHUP). */
  setLimits(limits: Pick<MailboxdConfig, 'max_message_size' | 'quota_bytes'>): void {
    this.limits = limits;
  }

  get maxMessageSize(): number {
    return this.limits.max_message_size;
  }

  close(): void {
    this.watchers.close();
  }

  /** handlers - the message table. */
  handlers(): Record<string, HandlerSpec> {
    return {
      store: { params: [3, 4], rawInput: true, nowLength: (p) => (/^\d{1,15}$/.test(p[2]!) ? Number(p[2]) : null), handle: (ctx) => this.store(ctx.params, ctx.send, ctx.receiveRaw, ctx.rawBytes) },
      list: { params: [1, 2], handle: (ctx) => inOrder(ctx.conn, () => this.list(ctx.conn, ctx.params[0]!, ctx.params[1])) },
      retr: { params: 2, handle: (ctx) => inOrder(ctx.conn, () => this.retr(ctx.conn, ctx.params[0]!, ctx.params[1]!)) },
      dele: { params: 2, handle: (ctx) => inOrder(ctx.conn, () => this.dele(ctx.conn, ctx.params[0]!, ctx.params[1]!)) },
      ...folderHandlers(this),
    };
  }

  /** box - the UserBox of a user already checked. */
  box(user: string): UserBox {
    let b = this.boxes.get(user);
    if (!b) {
      b = new UserBox(
        user,
        userDir(this.root, user),
        this.host,
        this.syncer,
        (u, f) => this.watchers.changed(u, f.name),
        (u, f, err) => this.logger.warn({ event: 'mailboxd.numbering_failed', user: u, folder: f.name, err: String(err) }, 'stored messages not numbered yet; retrying every second'),
      );
      this.boxes.set(user, b);
    }
    return b;
  }

  /** user - the checked user for RAW (authd asked once per connection and user). */
  async user(conn: IpcConnection | null, raw: string): Promise<UserCheck> {
    const known = safeUser(raw);
    const checked = conn?.data.get(CHECKED) as Set<string> | undefined;
    if (known !== null && checked?.has(known)) return { ok: true, user: known };
    const check = await checkUser(this.authd, raw);
    if (check.ok && conn) {
      if (checked) checked.add(check.user);
      else conn.data.set(CHECKED, new Set([check.user]));
    }
    return check;
  }

  /** quotaUsed - bytes in the user's folders known so far (INBOX always). */
  async quotaUsed(box: UserBox): Promise<number> {
    await box.inbox().sync();
    return box.usage();
  }

  /** reserve - check the quota for SIZE more bytes and hold them; the release function, or null when over. */
  async reserve(user: string, box: UserBox, size: number): Promise<(() => void) | null> {
    if (this.limits.quota_bytes <= 0) return () => {};
    const used = (await this.quotaUsed(box)) + (this.inFlight.get(user) ?? 0);
    if (used + size > this.limits.quota_bytes) {
      this.logger.info({ event: 'mailboxd.quota_exceeded', user, used, size }, 'quota exceeded');
      return null;
    }
    this.inFlight.set(user, (this.inFlight.get(user) ?? 0) + size);
    return () => this.inFlight.set(user, (this.inFlight.get(user) ?? 0) - size);
  }

  /** store - every check before the go-ahead; then tmp/, fsync, new/, fsync, `ok` (the uidlist line follows: deferred numbering). */
  private async store(
    params: string[],
    send: (name: string, params?: string[]) => void,
    receiveRaw: (len: number) => Readable,
    rawBytes?: readonly Buffer[],
  ): Promise<Reply> {
    const [to, recipient, lengthText, rawQid] = params as [string, string, string, string | undefined];
    // An empty QID is the 3-parameter form (a message without a queue id is stored each time).
    const qid = rawQid === '' ? undefined : rawQid;
    if (!/^\d{1,15}$/.test(lengthText)) return failure('5.5.4', 'bad length');
    const length = Number(lengthText);
    if (length > this.limits.max_message_size) return failure('5.3.4', `message too large: limit is ${this.limits.max_message_size} bytes`);
    // RECIPIENT becomes a header line: no control characters (no header injection).
    if (recipient.length === 0 || recipient.length > 998 || /[\x00-\x1f\x7f]/.test(recipient)) return failure('5.1.3', 'bad recipient');
    if (qid !== undefined && !QID_RE.test(qid)) return failure('5.5.4', 'bad queue id');
    const check = await checkUser(this.resolved, to);
    if (!check.ok) return failure(check.status, check.message);
    const user = check.user;
    const header = deliveredToHeader(recipient);
    const size = length + header.length;
    const box = this.box(user);
    const inbox = box.inbox();
    const dkey = qid === undefined ? undefined : deliveryKey(qid, user, recipient);

    // Exactly-once: a store of the same (qid, user, recipient) running now is waited for.
    while (dkey && this.storing.has(dkey)) await this.storing.get(dkey)!.catch(() => {});
    let finish: () => void = () => {};
    if (dkey) this.storing.set(dkey, new Promise<void>((r) => (finish = r)));
    try {
      if (dkey) {
        // load(), not sync(): a delivery key is only ever written by us, so the index in memory
        // (loaded once, then kept by our own stores, numbered or not yet) knows every earlier
        // store. A stat check here would see concurrent stores' renames into new/ and readdir the
        // whole folder per message; numbering here would undo deferred numbering.
        await inbox.load();
        const dup = inbox.byDkey.get(dkey);
        if (dup && !dup.gone) {
          send('ok');
          receiveRaw(length); // not read: the IPC server skips it, keeping the framing
          this.logger.info({ event: 'mailboxd.duplicate', user, recipient, qid, pop3: dup.pop3 }, 'already stored: not stored again');
          return ok('duplicate');
        }
      }
      const release = await this.reserve(user, box, size);
      if (!release) return failure('5.2.2', 'quota exceeded');
      try {
        send('ok');
        // In-thread (the router beside us): the bytes are here already, no stream needed.
        const whole = rawBytes ? (rawBytes.length === 1 ? rawBytes[0]! : Buffer.concat(rawBytes)) : null;
        // Not destroyed on an early exit: the IPC server then skips the rest, keeping framing.
        const body = whole ? deliveredToParts(whole, header) : withDeliveredTo(receiveRaw(length).iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>, header);
        try {
          const m = await inbox.deliver(body, size, { dkey });
          this.logger.info({ event: 'mailboxd.stored', user, recipient, qid, size, pop3: m.pop3 }, 'stored');
          return ok();
        } catch (err) {
          // A full disk (4.3.1) or any other write failure: the router defers and tries again.
          this.logger.warn({ event: 'mailboxd.store_failed', user, recipient, qid, err: String(err) }, 'store failed');
          return failure(errnoStatus(err), 'store failed');
        }
      } finally {
        release();
      }
    } finally {
      if (dkey) {
        this.storing.delete(dkey);
        finish();
      }
    }
  }

  /**
   * list - `ok: COUNT`, `mailinfo: N ; SIZE ; UID` ..., `ok`; fixes this connection's numbering.
   * `list: USER ; path` adds the Maildir to the first line and each file's place (`new/NAME`).
   */
  private async list(conn: IpcConnection, rawUser: string, option: string | undefined): Promise<Reply> {
    if (option !== undefined && option !== 'path') return error('list: the second parameter can only be path');
    const check = await this.user(conn, rawUser);
    if (!check.ok) return error(check.message);
    const inbox = this.box(check.user).inbox();
    await inbox.sync();
    const msgs = inbox.messages();
    numbering(conn).set(check.user, msgs.slice());
    return preformatted(listText(inbox, option === 'path'));
  }

  /** entry - the message numbered N for USER on this connection (numbered now if never listed). */
  private async entry(conn: IpcConnection, rawUser: string, n: string): Promise<{ user: string; m: Msg; folder: Folder } | string> {
    const table = numbering(conn);
    const known = safeUser(rawUser);
    let user = known !== null && table.has(known) ? known : null;
    let list = user ? table.get(user) : undefined;
    if (!user || !list) {
      const check = await this.user(conn, rawUser);
      if (!check.ok) return check.message;
      user = check.user;
      const inbox = this.box(user).inbox();
      await inbox.sync();
      list = inbox.messages().slice();
      table.set(user, list);
    }
    if (!/^\d{1,9}$/.test(n)) return 'bad message number';
    const m = list[Number(n) - 1];
    if (!m || m.gone) return `no such message ${n}`;
    return { user, m, folder: this.box(user).inbox() };
  }

  private async retr(conn: IpcConnection, rawUser: string, n: string): Promise<Reply> {
    const found = await this.entry(conn, rawUser, n);
    if (typeof found === 'string') return error(found);
    const r = await readMessage(found.folder, found.m);
    return r ?? error(`no such message ${n}`);
  }

  private async dele(conn: IpcConnection, rawUser: string, n: string): Promise<Reply> {
    const found = await this.entry(conn, rawUser, n);
    if (typeof found === 'string') return error(found);
    numbering(conn).get(found.user)![Number(n) - 1] = null;
    const removed = await found.folder.remove(found.m);
    if (!removed) return error(`no such message ${n}`);
    this.logger.info({ event: 'mailboxd.deleted', user: found.user, uid: found.m.uid, pop3: found.m.pop3 }, 'deleted');
    return ok();
  }
}

const listCache = new WeakMap<Folder, { version: number; path: boolean; text: Buffer }>();

/** listText - the whole `list` answer, cached until the folder changes (a POP3 login is mostly a list). */
function listText(folder: Folder, withPath: boolean): Buffer {
  const hit = listCache.get(folder);
  if (hit && hit.version === folder.version && hit.path === withPath) return hit.text;
  const msgs = folder.messages();
  const parts: string[] = [withPath ? `ok: ${msgs.length} ; ${encodeParam(folder.dir)}\r\n` : `ok: ${msgs.length}\r\n`];
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i]!;
    const uid = NEEDS_ENCODING.test(m.pop3) ? encodeParam(m.pop3) : m.pop3;
    if (withPath) {
      const rel = `${m.sub}/${m.name}`;
      parts.push(`mailinfo: ${i + 1} ; ${m.size} ; ${uid} ; ${NEEDS_ENCODING.test(rel) ? encodeParam(rel) : rel}\r\n`);
    } else {
      parts.push(`mailinfo: ${i + 1} ; ${m.size} ; ${uid}\r\n`);
    }
  }
  parts.push('ok\r\n');
  const text = Buffer.from(parts.join(''));
  listCache.set(folder, { version: folder.version, path: withPath, text });
  return text;
}

/**
 * readMessage - `ok: SIZE` + bytes of the message, following a rename by another reader; null
 * if it is gone or not a regular file (a symlink or a FIFO planted in the Maildir is never
 * followed or waited on: it could name a file outside it, or hang the thread). Small files are
 * read in one synchronous call: from the page cache that costs a few microseconds, far less
 * than four thread-pool round trips.
 */
export async function readMessage(folder: Folder, m: Msg, offset = 0, length = -1): Promise<Reply | null> {
  for (let attempt = 0; attempt < 2; attempt++) {
    if (m.gone) return null;
    try {
      if (m.size <= SMALL_MESSAGE) {
        const buf = readRegular(folder.pathOf(m));
        return buf && rawData(slice(buf, offset, length));
      }
      const { promises: fsp } = await import('node:fs');
      const fh = await fsp.open(folder.pathOf(m), MESSAGE_OPEN);
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return null;
      }
      const size = st.size;
      const start = Math.min(offset, size);
      const end = length < 0 ? size : Math.min(size, start + length);
      if (end - start <= SMALL_MESSAGE) {
        try {
          const buf = Buffer.allocUnsafe(end - start);
          const { bytesRead } = await fh.read(buf, 0, end - start, start);
          return rawData(buf.subarray(0, bytesRead));
        } finally {
          await fh.close();
        }
      }
      // Streamed from the file: constant memory whatever the size; the stream closes the handle.
      return rawData(fh.createReadStream({ start, end: end - 1, highWaterMark: 256 * 1024 }), end - start);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'EMLINK') return null; // a symlink (O_NOFOLLOW)
      if (code !== 'ENOENT') throw err;
      await folder.resync();
    }
  }
  return null;
}

/** readRegular - the whole file if it is a regular file, else null (see MESSAGE_OPEN). */
function readRegular(file: string): Buffer | null {
  const fd = openSync(file, MESSAGE_OPEN);
  try {
    return fstatSync(fd).isFile() ? readFileSync(fd) : null;
  } finally {
    closeSync(fd);
  }
}

function slice(buf: Buffer, offset: number, length: number): Buffer {
  if (offset === 0 && length < 0) return buf;
  const start = Math.min(offset, buf.length);
  return buf.subarray(start, length < 0 ? buf.length : Math.min(buf.length, start + length));
}

/** deliveryKey - the exactly-once key of (qid, user, recipient): 16 hex digits in the file name. */
export function deliveryKey(qid: string, user: string, recipient: string): string {
  return createHash('sha256').update(`${qid}\0${user}\0${recipient.toLowerCase()}`).digest('hex').slice(0, 16);
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
export function inOrder<T>(conn: IpcConnection, fn: () => Promise<T>): Promise<T> {
  const prev = (conn.data.get(CHAIN) as Promise<unknown> | undefined) ?? Promise.resolve();
  const next = prev.catch(() => {}).then(fn);
  conn.data.set(CHAIN, next);
  return next;
}
