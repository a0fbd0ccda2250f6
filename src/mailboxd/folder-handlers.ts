// The IPC messages for IMAP: folders, UIDs, flags, MODSEQ, fetch/append/copy/move/expunge and
// change watches (MAILBOXD-IPC / README "mailboxd" for the wire forms).

import type { Readable } from 'node:stream';

import { type HandlerSpec, type IpcConnection, type Message, type Reply, error, formatMessage, multiLine, ok, preformatted } from '../ipc/index.js';
import { FlagError, flagNames, parseFlagList, sortLetters } from './flags.js';
import type { Folder, Msg } from './folder.js';
import { folderKey } from './folder-name.js';
import type { MailboxService } from './handlers.js';
import { inOrder, readMessage } from './handlers.js';
import { FolderError, type UserBox, transfer } from './mailbox.js';
import { UidSetError, formatUids, inSet, parseUidSet } from './uidset.js';
import { WatchError } from './watchers.js';

type Resolved = { user: string; box: UserBox; key: string; folder: Folder | null };

/** folderHandlers - the table of IMAP-facing messages, bound to the service. */
export function folderHandlers(svc: MailboxService): Record<string, HandlerSpec> {
  /** ordered - a handler that runs in connection order and maps known errors to `error: ...`. */
  const ordered = (params: number | [number, number], fn: (conn: IpcConnection, p: string[]) => Promise<Reply>): HandlerSpec => ({
    params,
    handle: (ctx) => inOrder(ctx.conn, () => fn(ctx.conn, ctx.params).catch(known)),
  });

  /**
   * resolve - the user's folder, after the stat check (`statCheck` false: only loaded; for `fetch`,
   * whose UID came from an earlier answer and whose read follows a rename or finds it gone).
   */
  const resolve = async (conn: IpcConnection, rawUser: string, rawFolder: string, must = true, statCheck = true): Promise<Resolved | Reply> => {
    const check = await svc.user(conn, rawUser);
    if (!check.ok) return error(check.message);
    const key = folderKey(rawFolder);
    if (key === null) return error('bad folder name');
    const box = svc.box(check.user);
    const folder = await box.folder(key);
    if (must && !folder) return error('no such folder');
    if (folder) await (statCheck ? folder.sync() : folder.ready());
    return { user: check.user, box, key, folder };
  };
  const isReply = (r: Resolved | Reply): r is Reply => 'kind' in r;

  return {
    folders: ordered(1, async (conn, [u]) => {
      const check = await svc.user(conn, u!);
      if (!check.ok) return error(check.message);
      const box = svc.box(check.user);
      const [names, subs] = await Promise.all([box.names(), box.subscriptions()]);
      const subscribed = new Set(subs);
      const lines: Message[] = names.map((n) => ({ name: 'folder', params: [n, subscribed.has(n) ? '1' : '0'] }));
      for (const s of subs) if (!names.includes(s)) lines.push({ name: 'folder', params: [s, '1', 'nonexistent'] });
      return multiLine(lines);
    }),
    'folder-create': ordered(2, async (conn, [u, f]) => {
      const r = await resolve(conn, u!, f!, false);
      if (isReply(r)) return r;
      if (r.folder) return error('folder exists');
      return ok(String(await r.box.create(r.key)));
    }),
    'folder-delete': ordered(2, async (conn, [u, f]) => {
      const r = await resolve(conn, u!, f!, false);
      if (isReply(r)) return r;
      await r.box.remove(r.key);
      return ok();
    }),
    'folder-rename': ordered(3, async (conn, [u, f, t]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      const to = folderKey(t!);
      if (to === null) return error('bad folder name');
      await r.box.rename(r.key, to);
      return ok();
    }),
    'folder-subscribe': ordered(3, async (conn, [u, f, on]) => {
      const r = await resolve(conn, u!, f!, false);
      if (isReply(r)) return r;
      if (on !== '1' && on !== '0') return error('folder-subscribe: the third parameter is 1 or 0');
      await r.box.subscribe(r.key, on === '1');
      return ok();
    }),
    'folder-status': ordered(2, async (conn, [u, f]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      const folder = r.folder!;
      let unseen = 0;
      let size = 0;
      for (const m of folder.messages()) {
        if (!m.letters.includes('S')) unseen++;
        size += m.size;
      }
      return ok(String(folder.messages().length), String(folder.uidvalidity), String(folder.uidnext), String(unseen), String(folder.highestModseq), String(size));
    }),
    index: ordered(2, async (conn, [u, f]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      return indexReply(r.folder!);
    }),
    changes: ordered(3, async (conn, [u, f, since]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      if (!/^\d{1,16}$/.test(since!)) return error('bad modseq');
      const folder = r.folder!;
      const s = Number(since);
      const lines = folder.messages().filter((m) => m.modseq > s).map((m) => uidinfo(folder, m));
      const gone = folder.expungedSince(s).map((e) => e.uid).sort((a, b) => a - b);
      if (gone.length > 0) lines.push({ name: 'expunged', params: [formatUids(gone)] });
      const complete = s >= folder.expungeFloor ? '1' : '0';
      const reply = multiLine(lines) as Extract<Reply, { kind: 'lines' }>;
      reply.lines[0]!.params.push(String(folder.uidvalidity), String(folder.uidnext), String(folder.highestModseq), complete);
      return reply;
    }),
    // No stat check per message: three thread-pool stats cost more than the read (FETCH BODY[]
    // of 4 KiB messages spent half of mailboxd's time there), and readMessage already follows
    // a rename by another reader (ENOENT -> resync) or answers gone.
    fetch: ordered([3, 5], async (conn, [u, f, uid, off, len]) => {
      const r = await resolve(conn, u!, f!, true, false);
      if (isReply(r)) return r;
      const m = byUid(r.folder!, uid!);
      if (!m) return error(`no such message ${uid}`);
      if ((off !== undefined && !/^\d{1,15}$/.test(off)) || (len !== undefined && !/^\d{1,15}$/.test(len))) return error('bad offset or length');
      return (await readMessage(r.folder!, m, off === undefined ? 0 : Number(off), len === undefined ? -1 : Number(len))) ?? error(`no such message ${uid}`);
    }),
    path: ordered(3, async (conn, [u, f, uid]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      const m = byUid(r.folder!, uid!);
      if (!m) return error(`no such message ${uid}`);
      return ok(r.folder!.pathOf(m), String(m.size));
    }),
    append: { params: 5, rawInput: true, handle: (ctx) => append(svc, resolve, isReply, ctx.conn, ctx.params, ctx.send, ctx.receiveRaw).catch(known) },
    flags: ordered([5, 6], async (conn, [u, f, set, op, flags, unchanged]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      const folder = r.folder!;
      if (op !== 'set' && op !== 'add' && op !== 'remove') return error('flags: OP is set, add or remove');
      if (unchanged !== undefined && !/^\d{1,16}$/.test(unchanged)) return error('bad modseq');
      const parsed = parseFlagList(flags!);
      let kw = '';
      for (const k of parsed.keywords) {
        const l = await folder.keywords.letterFor(k, op !== 'remove');
        if (l) kw += l;
      }
      const given = parsed.system + kw;
      const ranges = parseUidSet(set!, folder.maxUid());
      const targets = folder.messages().filter((m) => inSet(ranges, m.uid));
      const limit = unchanged === undefined ? Infinity : Number(unchanged);
      const modified: number[] = [];
      const changes: Array<{ m: Msg; letters: string }> = [];
      const touched: Msg[] = [];
      for (const m of targets) {
        if (m.modseq > limit) {
          modified.push(m.uid);
          continue;
        }
        touched.push(m);
        const next = op === 'set' ? given : op === 'add' ? m.letters + given : [...m.letters].filter((l) => !given.includes(l)).join('');
        const letters = sortLetters(next);
        if (letters !== m.letters) changes.push({ m, letters });
      }
      if (changes.length > 0) await folder.setLetters(changes);
      const reply = listOf(folder, touched.filter((m) => !m.gone), []) as Extract<Reply, { kind: 'lines' }>;
      reply.lines[0]!.params.push(formatUids(modified));
      return reply;
    }),
    copy: ordered(4, (conn, p) => copyOrMove(resolve, isReply, conn, p, false)),
    move: ordered(4, (conn, p) => copyOrMove(resolve, isReply, conn, p, true)),
    expunge: ordered(3, async (conn, [u, f, set]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      const folder = r.folder!;
      const ranges = parseUidSet(set!, folder.maxUid());
      const targets = folder.messages().filter((m) => inSet(ranges, m.uid));
      const results = await Promise.all(targets.map((m) => folder.remove(m)));
      const removed = targets.filter((_, i) => results[i]).map((m) => m.uid);
      svc.logger.info({ event: 'mailboxd.expunged', user: r.user, folder: r.key, count: removed.length }, 'expunged');
      return ok(formatUids(removed));
    }),
    watch: ordered(3, async (conn, [u, f, cb]) => {
      const r = await resolve(conn, u!, f!);
      if (isReply(r)) return r;
      svc.watchers.watch(r.user, r.key, cb!);
      return ok(String(r.folder!.uidvalidity), String(r.folder!.uidnext), String(r.folder!.highestModseq));
    }),
    unwatch: ordered(3, async (conn, [u, f, cb]) => {
      const check = await svc.user(conn, u!);
      if (!check.ok) return error(check.message);
      const key = folderKey(f!);
      if (key === null) return error('bad folder name');
      svc.watchers.unwatch(check.user, key, cb!);
      return ok();
    }),
  };
}

/** known - the errors a client caused, as `error: ...`; anything else stays an internal error. */
function known(err: unknown): Reply {
  if (err instanceof FolderError || err instanceof FlagError || err instanceof UidSetError || err instanceof WatchError) return error(err.message);
  throw err;
}

function byUid(folder: Folder, uid: string): Msg | undefined {
  return /^\d{1,10}$/.test(uid) ? folder.get(Number(uid)) : undefined;
}

function uidinfo(folder: Folder, m: Msg): Message {
  return { name: 'uidinfo', params: [String(m.uid), String(m.size), flagNames(m.letters, folder.keywords), String(m.modseq), String(folder.internalDate(m))] };
}

/**
 * "Index cache": the last few `index` answers, encoded, reused while their folder is unchanged
 * (same message list and places, HIGHESTMODSEQ, UIDNEXT, keyword table): a client selecting a
 * 100,000-message folder again costs one write, not 100,000 lines built. Bounded: the answers
 * of INDEX_CACHE folders (about 50 bytes a message).
 */
const INDEX_CACHE = 8;
const indexCache = new Map<Folder, { key: string; text: Buffer }>();

function indexReply(folder: Folder): Reply {
  const key = `${folder.version}:${folder.highestModseq}:${folder.uidnext}:${folder.uidvalidity}:${folder.keywords.signature()}`;
  const hit = indexCache.get(folder);
  indexCache.delete(folder);
  if (hit && hit.key === key) {
    indexCache.set(folder, hit);
    return preformatted(hit.text);
  }
  const msgs = folder.messages();
  const parts: string[] = [formatMessage('ok', [String(msgs.length), String(folder.uidvalidity), String(folder.uidnext), String(folder.highestModseq)])];
  for (const m of msgs) {
    const u = uidinfo(folder, m);
    parts.push(formatMessage(u.name, u.params));
  }
  parts.push('ok\r\n');
  const text = Buffer.from(parts.join(''));
  indexCache.set(folder, { key, text });
  if (indexCache.size > INDEX_CACHE) indexCache.delete(indexCache.keys().next().value!);
  return preformatted(text);
}

function listOf(folder: Folder, msgs: readonly Msg[], extra: string[]): Reply {
  const reply = multiLine(msgs.map((m) => uidinfo(folder, m))) as Extract<Reply, { kind: 'lines' }>;
  reply.lines[0]!.params.push(...extra);
  return reply;
}

type ResolveFn = (conn: IpcConnection, u: string, f: string, must?: boolean) => Promise<Resolved | Reply>;

async function copyOrMove(resolve: ResolveFn, isReply: (r: Resolved | Reply) => r is Reply, conn: IpcConnection, [u, f, set, d]: string[], move: boolean): Promise<Reply> {
  const r = await resolve(conn, u!, f!);
  if (isReply(r)) return r;
  const dr = await resolve(conn, u!, d!);
  if (isReply(dr)) return dr;
  const src = r.folder!;
  const ranges = parseUidSet(set!, src.maxUid());
  const msgs = src.messages().filter((m) => inSet(ranges, m.uid));
  const res = await transfer(src, msgs, dr.folder!, move);
  return ok(String(dr.folder!.uidvalidity), res.from.join(','), res.to.join(','));
}

async function append(
  svc: MailboxService,
  resolve: ResolveFn,
  isReply: (r: Resolved | Reply) => r is Reply,
  conn: IpcConnection,
  [u, f, lengthText, flags, date]: string[],
  send: (name: string, params?: string[]) => void,
  receiveRaw: (len: number) => Readable,
): Promise<Reply> {
  if (!/^\d{1,15}$/.test(lengthText!)) return error('bad length');
  const length = Number(lengthText);
  if (length > svc.maxMessageSize) return error(`message too large: limit is ${svc.maxMessageSize} bytes`);
  if (date !== '' && !/^\d{1,12}$/.test(date!)) return error('bad internal date');
  const r = await resolve(conn, u!, f!);
  if (isReply(r)) return r;
  const folder = r.folder!;
  const parsed = parseFlagList(flags!);
  let letters = parsed.system;
  for (const k of parsed.keywords) letters += (await folder.keywords.letterFor(k, true)) ?? '';
  const release = await svc.reserve(r.user, r.box, length);
  if (!release) return error('quota exceeded');
  try {
    send('ok');
    const source = receiveRaw(length).iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
    const m = await folder.deliver(source, length, { letters: sortLetters(letters), mtime: date === '' ? undefined : Number(date), numbered: true });
    svc.logger.info({ event: 'mailboxd.appended', user: r.user, folder: r.key, uid: m.uid, size: length }, 'appended');
    return ok(String(m.uid), String(folder.uidvalidity));
  } catch (err) {
    if (err instanceof FolderError || err instanceof FlagError) throw err;
    svc.logger.warn({ event: 'mailboxd.append_failed', user: r.user, folder: r.key, err: String(err) }, 'append failed');
    return error('append failed');
  } finally {
    release();
  }
}
