// Writing one message into a Maildir: tmp/ -> fdatasync -> rename into place. A big message
// streams through a DurableFile (shared/durable.ts), then the caller's folder fsync makes the
// rename durable (DirSyncer: concurrent deliveries share it). A small one is gathered first and
// its whole create-write-sync-rename rides in that folder commit job (writeSmallMessage).

import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { type DirSyncer, DurableFile, FLUSH_BYTES } from '../shared/durable.js';

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

/** Messages up to this size are gathered in memory and written inside the folder's commit. */
export const SMALL_MESSAGE = FLUSH_BYTES;

/** gatherBody - exactly SIZE bytes of BODY, in the pieces they came in. */
export async function gatherBody(body: AsyncIterable<Buffer>, size: number): Promise<Buffer[]> {
  const pieces: Buffer[] = [];
  let written = 0;
  for await (const chunk of body) {
    written += chunk.length;
    if (written > size) throw new Error('message longer than announced');
    pieces.push(chunk);
  }
  if (written !== size) throw new Error(`message is ${written} bytes, announced ${size}`);
  return pieces;
}

/**
 * writeSmallMessage - DATA as tmp/BASE, fdatasynced, renamed to `finalPath` (mtime set first
 * when given) and the folder holding it fsynced: one job, shared with concurrent deliveries to
 * that folder. On failure nothing shows at `finalPath` and no tmp/ file is left.
 */
export async function writeSmallMessage(syncer: DirSyncer, dir: string, base: string, data: Buffer[], finalPath: string, mtime?: number): Promise<void> {
  const step = { from: path.join(dir, 'tmp', base), to: finalPath, data, mtime };
  try {
    await syncer.sync(path.dirname(finalPath), step);
  } catch (err) {
    // The Maildir was removed under us (e.g. by an administrator): make it again, once.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
    await syncer.sync(path.dirname(finalPath), step);
  }
}
