// An in-memory store for imapd's protocol tests: the store interface with mailboxd's rules
// (UIDs only grow, every change a new modseq, expunges remembered for `changes`).

import { EventEmitter } from 'node:events';

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
} from '../../src/imapd/store.js';

interface Msg extends MessageMeta {
  data: Buffer;
}

interface Folder {
  uidvalidity: number;
  uidnext: number;
  highestModseq: number;
  msgs: Msg[];
  expunged: Array<{ uid: number; modseq: number }>;
}

export class MemoryStore implements MailStore {
  readonly users = new Map<string, { folders: Map<string, Folder>; subs: Set<string> }>();
  readonly events = new EventEmitter();
  private modseq = 1;

  nextModseq(): number {
    return ++this.modseq;
  }
  private validity = 1000;

  constructor() {
    this.events.setMaxListeners(0);
  }

  user(u: string): { folders: Map<string, Folder>; subs: Set<string> } {
    let x = this.users.get(u);
    if (!x) {
      x = { folders: new Map(), subs: new Set(['INBOX']) };
      x.folders.set('INBOX', this.newFolder());
      for (const n of ['Sent', 'Drafts', 'Trash', 'Junk', 'Archive']) {
        x.folders.set(n, this.newFolder());
        x.subs.add(n);
      }
      this.users.set(u, x);
    }
    return x;
  }

  newFolder(): Folder {
    return { uidvalidity: this.validity++, uidnext: 1, highestModseq: 1, msgs: [], expunged: [] };
  }

  folder(u: string, name: string): Folder {
    const f = this.user(u).folders.get(name);
    if (!f) throw new StoreError('NONEXISTENT', 'No such folder');
    return f;
  }

  /** deliver - a message arriving in a user's folder (as mailboxd `store`). */
  deliver(u: string, data: Buffer | string, folder = 'INBOX', flags: string[] = []): number {
    const f = this.folder(u, folder);
    const m: Msg = { uid: f.uidnext++, flags: [...flags], modseq: this.nextModseq(), size: 0, internalDate: Date.now(), data: Buffer.from(data) };
    m.size = m.data.length;
    f.msgs.push(m);
    f.highestModseq = m.modseq;
    this.changed(u, folder);
    return m.uid;
  }

  changed(u: string, folder: string): void {
    setImmediate(() => this.events.emit(`${u}\0${folder}`));
  }

  async open(user: string): Promise<UserMail> {
    this.user(user);
    return new MemoryUser(this, user);
  }
}

const meta = (m: Msg): MessageMeta => ({ uid: m.uid, flags: [...m.flags], modseq: m.modseq, size: m.size, internalDate: m.internalDate });

class MemoryUser implements UserMail {
  readonly delimiter = '.';
  private readonly offs = new Set<() => void>();

  constructor(
    private readonly s: MemoryStore,
    private readonly u: string,
  ) {}

  private get me(): { folders: Map<string, Folder>; subs: Set<string> } {
    return this.s.user(this.u);
  }

  async folders(): Promise<FolderInfo[]> {
    const names = [...this.me.folders.keys()].sort((a, b) => (a === 'INBOX' ? -1 : b === 'INBOX' ? 1 : a.localeCompare(b)));
    const out: FolderInfo[] = names.map((name) => ({ name, subscribed: this.me.subs.has(name), exists: true }));
    for (const s of this.me.subs) if (!this.me.folders.has(s)) out.push({ name: s, subscribed: true, exists: false });
    return out;
  }

  async create(name: string): Promise<void> {
    if (this.me.folders.has(name)) throw new StoreError('ALREADYEXISTS', 'Folder exists');
    this.me.folders.set(name, this.s.newFolder());
  }

  async remove(name: string): Promise<void> {
    this.s.folder(this.u, name);
    this.me.folders.delete(name);
    this.s.changed(this.u, name);
  }

  async rename(from: string, to: string): Promise<void> {
    const f = this.s.folder(this.u, from);
    if (this.me.folders.has(to)) throw new StoreError('ALREADYEXISTS', 'Folder exists');
    this.me.folders.delete(from);
    this.me.folders.set(to, f);
  }

  async subscribe(name: string, on: boolean): Promise<void> {
    if (on) this.me.subs.add(name);
    else this.me.subs.delete(name);
  }

  async status(name: string): Promise<FolderStatus> {
    const f = this.s.folder(this.u, name);
    return {
      messages: f.msgs.length,
      unseen: f.msgs.filter((m) => !m.flags.includes('\\Seen')).length,
      uidnext: f.uidnext,
      uidvalidity: f.uidvalidity,
      highestModseq: f.highestModseq,
      size: f.msgs.reduce((a, m) => a + m.size, 0),
    };
  }

  async state(name: string): Promise<FolderState> {
    const f = this.s.folder(this.u, name);
    return { uidvalidity: f.uidvalidity, uidnext: f.uidnext, highestModseq: f.highestModseq, messages: f.msgs.map(meta) };
  }

  async changes(name: string, since: number): Promise<FolderChanges> {
    const f = this.s.folder(this.u, name);
    return {
      kind: 'delta',
      highestModseq: f.highestModseq,
      uidnext: f.uidnext,
      changed: f.msgs.filter((m) => m.modseq > since).map(meta),
      expunged: f.expunged.filter((e) => e.modseq > since).map((e) => e.uid),
    };
  }

  async fetch(name: string, uid: number): Promise<Buffer | null> {
    return this.s.folder(this.u, name).msgs.find((m) => m.uid === uid)?.data ?? null;
  }

  async append(name: string, data: Buffer, flags: string[], internalDate: number | null): Promise<{ uidvalidity: number; uid: number }> {
    const f = this.s.folder(this.u, name);
    const uid = this.s.deliver(this.u, data, name, flags);
    if (internalDate !== null) f.msgs[f.msgs.length - 1]!.internalDate = internalDate;
    return { uidvalidity: f.uidvalidity, uid };
  }

  async copy(from: string, uids: number[], to: string, move: boolean): Promise<CopyResult> {
    const src = this.s.folder(this.u, from);
    const dst = this.s.folder(this.u, to);
    const pairs: Array<[number, number]> = [];
    for (const m of src.msgs.filter((x) => uids.includes(x.uid))) pairs.push([m.uid, this.s.deliver(this.u, m.data, to, m.flags)]);
    if (move) await this.expunge(from, pairs.map((p) => p[0]));
    return { uidvalidity: dst.uidvalidity, pairs };
  }

  async setFlags(name: string, uids: number[], mode: FlagMode, flags: string[], unchangedSince?: number): Promise<StoreResult> {
    const f = this.s.folder(this.u, name);
    const updated: MessageMeta[] = [];
    const modified: number[] = [];
    for (const m of f.msgs) {
      if (!uids.includes(m.uid)) continue;
      if (unchangedSince !== undefined && m.modseq > unchangedSince) {
        modified.push(m.uid);
        continue;
      }
      const before = m.flags.join(' ');
      let next = mode === 'replace' ? [...flags] : mode === 'add' ? [...m.flags, ...flags.filter((x) => !m.flags.includes(x))] : m.flags.filter((x) => !flags.includes(x));
      next = [...new Set(next)];
      if (next.join(' ') !== before) {
        m.flags = next;
        m.modseq = this.s.nextModseq();
        f.highestModseq = m.modseq;
      }
      updated.push(meta(m));
    }
    this.s.changed(this.u, name);
    return { updated, modified };
  }

  async expunge(name: string, uids: number[]): Promise<number[]> {
    const f = this.s.folder(this.u, name);
    const removed = f.msgs.filter((m) => uids.includes(m.uid)).map((m) => m.uid);
    f.msgs = f.msgs.filter((m) => !uids.includes(m.uid));
    const ms = this.s.nextModseq();
    for (const uid of removed) f.expunged.push({ uid, modseq: ms });
    f.highestModseq = ms;
    this.s.changed(this.u, name);
    return removed;
  }

  watch(name: string, onChange: () => void): () => void {
    const key = `${this.u}\0${name}`;
    this.s.events.on(key, onChange);
    const off = (): void => {
      this.s.events.off(key, onChange);
      this.offs.delete(off);
    };
    this.offs.add(off);
    return off;
  }

  close(): void {
    for (const off of [...this.offs]) off();
  }
}
