// Writing one message into a Maildir: tmp/ -> fdatasync -> rename into place, one hop to the
// I/O pool for a small message (DurableFile, shared/durable.ts). The folder fsync that makes
// the rename durable is the caller's (DirSyncer: concurrent deliveries share it).

import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { DurableFile, FLUSH_BYTES } from '../shared/durable.js';

/**
 * writeMessage - exactly `size` bytes from `body` into tmp/BASE, fdatasynced, then renamed to
 * `finalPath` (mtime set first when given). On any failure (short body, disk error) the tmp/
 * file is removed and nothing shows at `finalPath`.
 */
export async function writeMessage(dir: string, base: string, body: AsyncIterable<Buffer>, size: number, finalPath: string, mtime?: number): Promise<void> {
  const tmpPath = path.join(dir, 'tmp', base);
  let out = new DurableFile(tmpPath, { exclusive: true });
  // A small message is kept until it is committed, to write it again if the Maildir vanished.
  const kept: Buffer[] | null = size <= FLUSH_BYTES ? [] : null;
  let written = 0;
  try {
    for await (const chunk of body) {
      written += chunk.length;
      if (written > size) throw new Error('message longer than announced');
      kept?.push(chunk);
      await out.write(chunk);
    }
    if (written !== size) throw new Error(`message is ${written} bytes, announced ${size}`);
    try {
      await out.commit(finalPath, mtime);
    } catch (err) {
      // The Maildir was removed under us (e.g. by an administrator): make it again, once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !kept) throw err;
      for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
      out = new DurableFile(tmpPath, { exclusive: true });
      for (const chunk of kept) await out.write(chunk);
      await out.commit(finalPath, mtime);
    }
  } catch (err) {
    await out.abort();
    throw err;
  }
}
