// Writing one message into a Maildir: tmp/ -> fsync -> rename into place. The directory fsync
// that makes the rename durable is the caller's (DirSyncer: concurrent deliveries share it).

import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

import { fsyncDir } from '../shared/fsutil.js';

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

/**
 * writeMessage - exactly `size` bytes from `body` into tmp/BASE, fsynced, then renamed to
 * `finalPath` (mtime set first when given). On any failure (short body, disk error) the tmp/
 * file is removed and nothing shows at `finalPath`.
 */
export async function writeMessage(dir: string, base: string, body: AsyncIterable<Buffer>, size: number, finalPath: string, mtime?: number): Promise<void> {
  const tmpPath = path.join(dir, 'tmp', base);
  let fh: FileHandle;
  try {
    fh = await fsp.open(tmpPath, 'wx', 0o600);
  } catch (err) {
    // The Maildir was removed under us (e.g. by an administrator): make it again, once.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
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
    if (mtime !== undefined) await fsp.utimes(tmpPath, mtime, mtime);
    await fsp.rename(tmpPath, finalPath);
  } catch (err) {
    await fsp.rm(tmpPath, { force: true });
    throw err;
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}
