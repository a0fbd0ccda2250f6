// MailboxdStore - the store interface over mailboxd IPC (README "mailboxd": folders, index,
// changes, fetch, append, flags, copy, move, expunge, watch). imapd never touches a Maildir.
//
// "Connection pool": sessions share a few pipelined mailboxd connections (a session keeps
// the one it got at login), so a thousand idle sessions do not hold a thousand mailboxd
// connections, and one session's long FETCH does not stall every other session.
// "Special folders": at a user's first login in this process, Sent, Drafts, Trash, Junk and
// Archive are created and subscribed when missing (RFC 6154 needs them to exist).

import { type IpcClient, type IpcReply, type Message, decimalIn, errorStatus, parseMessage, replyText } from '../ipc/index.js';
import { SPECIAL_USE } from './names.js';
import {
  type CopyResult,
  type FlagMode,
  type FolderChanges,
  type FolderInfo,
  type FolderState,
  type FolderStatus,
  type MailStore,
  type MessageMeta,
  type StoreResult,
  StoreError,
  type UserMail,
} from './store.js';
import type { WatchHub } from './watch-hub.js';

const DELIMITER = '.';

export class MailboxdStore implements MailStore {
  private next = 0;
  /** Users whose special folders were made (or are being made) by this process. */
  private readonly prepared = new Map<string, Promise<void>>();

  constructor(
    private readonly pool: IpcClient[],
    private readonly hub: WatchHub,
  ) {}

  async open(user: string): Promise<UserMail> {
    const client = this.pool[this.next++ % this.pool.length]!;
    const mail = new MailboxdUser(user, client, this.hub);
    // Sessions logging in at once wait for the same creation instead of racing it.
    let ready = this.prepared.get(user);
    if (!ready) {
      ready = mail.ensureSpecialFolders();
      this.prepared.set(user, ready);
      ready.catch(() => this.prepared.delete(user));
    }
    await ready;
    return mail;
  }
}

class MailboxdUser implements UserMail {
  readonly delimiter = DELIMITER;
  private readonly unwatches = new Set<() => void>();

  constructor(
    private readonly user: string,
    private readonly ipc: IpcClient,
    private readonly hub: WatchHub,
  ) {}

  async ensureSpecialFolders(): Promise<void> {
    const folders = await this.folders();
    const have = new Set(folders.filter((f) => f.exists).map((f) => f.name));
    if (!folders.some((f) => f.name === 'INBOX' && f.subscribed)) await this.ipc.request('folder-subscribe', [this.user, 'INBOX', '1']);
    for (const name of Object.keys(SPECIAL_USE)) {
      if (have.has(name)) continue;
      const r = await this.ipc.request('folder-create', [this.user, name]);
      if (!r.ok && !/exists/.test(replyText(r))) throw fail(r);
      await this.ipc.request('folder-subscribe', [this.user, name, '1']);
    }
  }

  async folders(): Promise<FolderInfo[]> {
    const r = await this.ipc.requestList('folders', [this.user]);
    if (!r.reply.ok) throw fail(r.reply);
    return r.items.map((m) => ({ name: m.params[0] ?? '', subscribed: m.params[1] === '1', exists: m.params[2] !== 'nonexistent' }));
  }

  async create(name: string): Promise<void> {
    check(await this.ipc.request('folder-create', [this.user, name]));
  }

  async remove(name: string): Promise<void> {
    check(await this.ipc.request('folder-delete', [this.user, name]));
  }

  async rename(from: string, to: string): Promise<void> {
    check(await this.ipc.request('folder-rename', [this.user, from, to]));
  }

  async subscribe(name: string, on: boolean): Promise<void> {
    check(await this.ipc.request('folder-subscribe', [this.user, name, on ? '1' : '0']));
  }

  async status(name: string): Promise<FolderStatus> {
    const r = check(await this.ipc.request('folder-status', [this.user, name]));
    const [messages, uidvalidity, uidnext, unseen, highestModseq, size] = r.params.map(Number);
    return { messages: messages!, uidvalidity: uidvalidity!, uidnext: uidnext!, unseen: unseen!, highestModseq: highestModseq!, size: size! };
  }

  async state(name: string): Promise<FolderState> {
    const r = await this.ipc.requestList('index', [this.user, name], uidinfoLine);
    if (!r.reply.ok) throw fail(r.reply);
    const [, uidvalidity, uidnext, highestModseq] = r.reply.params.map(Number);
    return { uidvalidity: uidvalidity!, uidnext: uidnext!, highestModseq: highestModseq!, messages: r.items };
  }

  async changes(name: string, sinceModseq: number): Promise<FolderChanges> {
    const r = await this.ipc.requestList('changes', [this.user, name, String(sinceModseq)]);
    if (!r.reply.ok) throw fail(r.reply);
    const [, , uidnext, highestModseq, complete] = r.reply.params.map(Number);
    // Not every expunge remembered (mailboxd restarted): diff against the whole index.
    if (complete !== 1) return { kind: 'full', state: await this.state(name) };
    const changed: MessageMeta[] = [];
    const expunged: number[] = [];
    for (const m of r.items) {
      if (m.name === 'uidinfo') changed.push(uidinfo(m));
      else if (m.name === 'expunged') expunged.push(...expandSet(m.params[0] ?? ''));
    }
    return { kind: 'delta', highestModseq: highestModseq!, uidnext: uidnext!, changed, expunged };
  }

  async fetch(name: string, uid: number): Promise<Buffer | null> {
    const r = await this.ipc.requestRaw('fetch', [this.user, name, String(uid)]);
    if (!r.reply.ok) {
      if (/no such message/.test(replyText(r.reply))) return null;
      throw fail(r.reply);
    }
    return r.data ?? Buffer.alloc(0);
  }

  async append(name: string, data: Buffer, flags: string[], internalDate: number | null): Promise<{ uidvalidity: number; uid: number }> {
    const date = internalDate === null ? '' : String(Math.floor(internalDate / 1000));
    const r = check(await this.ipc.store('append', [this.user, name, String(data.length), flags.join(' '), date], data));
    return { uid: Number(r.params[0]), uidvalidity: Number(r.params[1]) };
  }

  async copy(from: string, uids: number[], to: string, move: boolean): Promise<CopyResult> {
    const r = check(await this.ipc.request(move ? 'move' : 'copy', [this.user, from, uidSet(uids), to]));
    const src = (r.params[1] ?? '').split(',').filter(Boolean).map(Number);
    const dst = (r.params[2] ?? '').split(',').filter(Boolean).map(Number);
    return { uidvalidity: Number(r.params[0]), pairs: src.map((s, i) => [s, dst[i]!] as [number, number]) };
  }

  async setFlags(name: string, uids: number[], mode: FlagMode, flags: string[], unchangedSince?: number): Promise<StoreResult> {
    const op = mode === 'add' ? 'add' : mode === 'remove' ? 'remove' : 'set';
    const params = [this.user, name, uidSet(uids), op, flags.join(' ')];
    if (unchangedSince !== undefined) params.push(String(unchangedSince));
    const r = await this.ipc.requestList('flags', params);
    if (!r.reply.ok) throw fail(r.reply);
    return { updated: r.items.map(uidinfo), modified: expandSet(r.reply.params[1] ?? '') };
  }

  async expunge(name: string, uids: number[]): Promise<number[]> {
    const r = check(await this.ipc.request('expunge', [this.user, name, uidSet(uids)]));
    return expandSet(replyText(r));
  }

  watch(name: string, onChange: () => void): () => void {
    const off = this.hub.watch(this.user, name, onChange);
    const unwatch = (): void => {
      off();
      this.unwatches.delete(unwatch);
    };
    this.unwatches.add(unwatch);
    return unwatch;
  }

  close(): void {
    for (const u of [...this.unwatches]) u();
  }
}

/** uidinfo - `uidinfo: UID ; SIZE ; FLAGS ; MODSEQ ; INTERNALDATE` (seconds). */
function uidinfo(m: Message): MessageMeta {
  const [uid, size, flags, modseq, date] = m.params;
  return {
    uid: Number(uid),
    size: Number(size),
    flags: flagArray(flags ?? ''),
    modseq: Number(modseq) || 1,
    internalDate: Number(date) * 1000,
  };
}

const UIDINFO = 'uidinfo:';

/**
 * uidinfoLine - one `uidinfo:` line of an `index` answer straight to MessageMeta: a line with
 * nothing percent-encoded is split here, without the Message in between (SELECT of 100,000
 * messages spent a third of its time in garbage collection of those).
 */
export function uidinfoLine(line: string): MessageMeta {
  if (!line.startsWith(UIDINFO) || line.includes('%')) return uidinfo(parseMessage(line));
  // Numbers read in place (no substring each); anything unexpected takes the general path.
  const s1 = line.indexOf(';', UIDINFO.length);
  const s2 = s1 < 0 ? -1 : line.indexOf(';', s1 + 1);
  const s3 = s2 < 0 ? -1 : line.indexOf(';', s2 + 1);
  const s4 = s3 < 0 ? -1 : line.indexOf(';', s3 + 1);
  if (s4 < 0 || line.indexOf(';', s4 + 1) >= 0) return uidinfo(parseMessage(line));
  const uid = digits(line, UIDINFO.length, s1);
  const size = digits(line, s1 + 1, s2);
  const modseq = digits(line, s3 + 1, s4);
  const date = digits(line, s4 + 1, line.length);
  if (uid < 0 || size < 0 || modseq < 0 || date < 0) return uidinfo(parseMessage(line));
  return { uid, size, flags: flagArray(line.slice(s2 + 1, s3).trim()), modseq: modseq || 1, internalDate: date * 1000 };
}

/** digits - the decimal number in line[from, to) between spaces, or -1 when it is not one. */
function digits(line: string, from: number, to: number): number {
  while (from < to && line.charCodeAt(from) === 32) from++;
  while (to > from && line.charCodeAt(to - 1) === 32) to--;
  return decimalIn(line, from, to);
}

/**
 * "Shared flag lists": messages with the same flags share one frozen array (a folder has a
 * handful of combinations, not one per message); at most FLAG_LISTS remembered.
 */
const FLAG_LISTS = 1000;
const flagLists = new Map<string, readonly string[]>();

function flagArray(text: string): string[] {
  let a = flagLists.get(text);
  if (!a) {
    a = Object.freeze(text.split(' ').filter(Boolean));
    if (flagLists.size < FLAG_LISTS) flagLists.set(text, a);
  }
  return a as string[];
}

/** uidSet - ascending UIDs as a compact IMAP set. */
function uidSet(uids: number[]): string {
  const sorted = [...uids].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]! <= sorted[j]! + 1) j++;
    out.push(j > i ? `${sorted[i]}:${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return out.join(',');
}

/** expandSet - a UID set with no `*` (as mailboxd sends them) as numbers, bounded. */
function expandSet(set: string): number[] {
  const out: number[] = [];
  for (const item of set.split(',').filter(Boolean)) {
    const [a, b] = item.split(':').map(Number);
    const lo = Math.min(a!, b ?? a!);
    const hi = Math.max(a!, b ?? a!);
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi - lo > 10_000_000) continue;
    for (let u = lo; u <= hi; u++) out.push(u);
  }
  return out;
}

function check(r: IpcReply): IpcReply {
  if (!r.ok) throw fail(r);
  return r;
}

/** fail - a mailboxd error as a StoreError with the IMAP response code that fits. */
function fail(r: IpcReply): StoreError {
  const text = errorStatus(r).text || 'mailboxd error';
  const code = /no such folder/.test(text)
    ? 'NONEXISTENT'
    : /folder exists/.test(text)
      ? 'ALREADYEXISTS'
      : /quota/.test(text)
        ? 'OVERQUOTA'
        : /too large/.test(text)
          ? 'TOOBIG'
          : /too many keywords|too many watches/.test(text)
            ? 'LIMIT'
            : /bad folder name|cannot delete|bad flag/.test(text)
              ? 'CANNOT'
              : 'SERVERBUG';
  return new StoreError(code, text.charAt(0).toUpperCase() + text.slice(1));
}
