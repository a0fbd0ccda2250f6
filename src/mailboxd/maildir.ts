// One user's Maildir: deliver (tmp/ -> fsync -> rename into new/ -> fsync new/), list new/ and
// cur/ in arrival order, open and remove a message wherever it is now (another reader such as
// Dovecot may have moved it from new/ to cur/ or added flags).

import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

import { fsyncDir } from '../shared/fsutil.js';
import { type MaildirEntry, compareArrival, newBaseName, parseName } from './maildir-name.js';

/** Maildir convention: tmp/ files older than this are leftovers of a crash. */
const STALE_TMP_MS = 36 * 3600 * 1000;

/** DirSyncer - group fsync: concurrent deliveries into one folder share directory fsyncs. */
export class DirSyncer {
  private readonly state = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();

  /** sync - resolves once an fsync of `dir` that started after this call has finished. */
  sync(dir: string): Promise<void> {
    let s = this.state.get(dir);
    if (!s) {
      s = { running: null, next: null };
      this.state.set(dir, s);
    }
    const st = s;
    if (!st.running) {
      st.running = fsyncDir(dir).finally(() => (st.running = null));
      return st.running;
    }
    if (!st.next) {
      st.next = st.running
        .catch(() => {})
        .then(() => {
          st.next = null;
          return this.sync(dir);
        });
    }
    return st.next;
  }
}

export class Maildir {
  private ready = false;

  constructor(
    readonly dir: string,
    private readonly host: string,
    private readonly syncer: DirSyncer,
  ) {}

  /** ensure - create tmp/ new/ cur/ (first use) and sweep crash leftovers from tmp/. */
  async ensure(): Promise<void> {
    if (this.ready) return;
    for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(path.join(this.dir, sub), { recursive: true, mode: 0o700 });
    await this.sweepTmp();
    this.ready = true;
  }

  private async sweepTmp(): Promise<void> {
    const tmp = path.join(this.dir, 'tmp');
    const now = Date.now();
    for (const name of await fsp.readdir(tmp)) {
      const p = path.join(tmp, name);
      try {
        const st = await fsp.stat(p);
        if (st.isFile() && now - st.mtimeMs > STALE_TMP_MS) await fsp.unlink(p);
      } catch {
        // gone already, or not ours to remove
      }
    }
  }

  /**
   * deliver - write exactly `size` bytes from `body` as a new message; durable when it resolves.
   * On any failure (short body, disk error) the tmp/ file is removed and nothing shows in new/.
   */
  async deliver(body: AsyncIterable<Buffer>, size: number): Promise<MaildirEntry> {
    await this.ensure();
    const base = newBaseName(this.host);
    const tmpPath = path.join(this.dir, 'tmp', base);
    const name = `${base},S=${size}`;
    let fh: FileHandle;
    try {
      fh = await fsp.open(tmpPath, 'wx', 0o600);
    } catch (err) {
      // The Maildir was removed under us (e.g. by an administrator): make it again, once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.ready = false;
      await this.ensure();
      fh = await fsp.open(tmpPath, 'wx', 0o600);
    }
    let written = 0;
    try {
      try {
        for await (const chunk of body) {
          written += chunk.length;
          if (written > size) throw new Error('message longer than announced');
          await writeAll(fh, chunk);
        }
        if (written !== size) throw new Error(`message is ${written} bytes, announced ${size}`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmpPath, path.join(this.dir, 'new', name));
    } catch (err) {
      await fsp.rm(tmpPath, { force: true });
      throw err;
    }
    await this.syncer.sync(path.join(this.dir, 'new'));
    return parseName('new', name)!;
  }

  /** list - every message in new/ and cur/, in arrival order, sizes filled in. */
  async list(): Promise<MaildirEntry[]> {
    const out: MaildirEntry[] = [];
    for (const sub of ['new', 'cur'] as const) {
      let names: string[];
      try {
        names = await fsp.readdir(path.join(this.dir, sub));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const n of names) {
        const e = parseName(sub, n);
        if (e) out.push(e);
      }
    }
    // Names without `,S=` (other writers): one stat each; a file gone meanwhile is skipped.
    const sized: MaildirEntry[] = [];
    for (const e of out) {
      if (e.size < 0) {
        try {
          const st = await fsp.stat(path.join(this.dir, e.rel));
          if (!st.isFile()) continue;
          e.size = st.size;
        } catch {
          continue;
        }
      }
      sized.push(e);
    }
    return sized.sort(compareArrival);
  }

  /** open - the message's file handle and exact size, following a move new -> cur; null if gone. */
  async open(entry: MaildirEntry): Promise<{ fh: FileHandle; size: number } | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const rel = attempt === 0 ? entry.rel : await this.locate(entry.uid);
      if (!rel) return null;
      try {
        const fh = await fsp.open(path.join(this.dir, rel), 'r');
        const st = await fh.stat();
        entry.rel = rel;
        return { fh, size: st.size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return null;
  }

  /** remove - unlink the message wherever it is; false when it is already gone. */
  async remove(entry: MaildirEntry): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const rel = attempt === 0 ? entry.rel : await this.locate(entry.uid);
      if (!rel) return false;
      try {
        await fsp.unlink(path.join(this.dir, rel));
        await this.syncer.sync(path.join(this.dir, rel.slice(0, 3)));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return false;
  }

  /** usage - bytes used by the messages (for the quota). */
  async usage(): Promise<number> {
    let total = 0;
    for (const e of await this.list()) total += e.size;
    return total;
  }

  /** locate - where the message with this UID is now (`new/...` or `cur/...`), or null. */
  private async locate(uid: string): Promise<string | null> {
    for (const sub of ['new', 'cur'] as const) {
      let names: string[];
      try {
        names = await fsp.readdir(path.join(this.dir, sub));
      } catch {
        continue;
      }
      for (const n of names) {
        if (n === uid || n.startsWith(uid + ',') || n.startsWith(uid + ':')) return `${sub}/${n}`;
      }
    }
    return null;
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}
