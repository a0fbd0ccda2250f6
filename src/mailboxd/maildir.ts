// Writing one message into a Maildir: tmp/ -> fdatasync -> rename into place -> folder fsync.
// The rename and the folder fsync are a step of the folder's commit job (DirSyncer: concurrent
// deliveries share it). A big message streams to tmp/ through a DurableFile (shared/durable.ts)
// first; a small one is gathered and written in one I/O job of its own (create, write,
// fdatasync, close). Message files are synced side by side in several I/O workers, not one
// after another in the folder's job: measured end to end at 20 SMTP sessions into one mailbox,
// synced in the folder's job, delivery fell behind acceptance (about 4,400 of 10,000 delivered
// when the last was accepted) and the run took 906-1,113 msg/s; side by side it kept up,
// 1,086-1,266 msg/s (3 alternating pairs).

import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { type DirCommit, type DirSyncer, DurableFile, FLUSH_BYTES, type GatherOptions, removeFile } from '../shared/durable.js';
import { runIo } from '../shared/io-pool.js';

/**
 * writeBigMessage - exactly `size` bytes from `body` streamed into tmp/BASE in FLUSH_BYTES
 * pieces and fdatasynced (mtime set when given); then, in the folder's commit job shared with
 * concurrent deliveries, renamed to `finalPath` and the folder fsynced: the folder's stamps
 * around that job tell our rename from anyone else's change. On any failure (short body, disk
 * error) the tmp/ file is removed and nothing shows at `finalPath`.
 */
export async function writeBigMessage(syncer: DirSyncer, dir: string, base: string, body: AsyncIterable<Buffer>, size: number, finalPath: string, mtime?: number, gather?: GatherOptions): Promise<DirCommit> {
  // A streamed body cannot be written a second time: folders removed under us (e.g. by an
  // administrator) are made again first, three mkdirs per big message.
  await remakeMaildir(dir);
  const tmpPath = path.join(dir, 'tmp', base);
  const out = new DurableFile(tmpPath, { exclusive: true });
  try {
    for await (const chunk of exactly(body, size)) await out.write(chunk);
    await out.commit(undefined, mtime);
  } catch (err) {
    await out.abort();
    throw err;
  }
  return await renameIntoPlace(syncer, tmpPath, finalPath, gather);
}

/** Messages up to this size are gathered in memory and written in one I/O job (writeSmallMessage). */
export const SMALL_MESSAGE = FLUSH_BYTES;

/** gatherBody - exactly SIZE bytes of BODY, in the pieces they came in. */
export async function gatherBody(body: AsyncIterable<Buffer> | readonly Buffer[], size: number): Promise<Buffer[]> {
  if (inMemory(body)) {
    const seen = body.reduce((n: number, b: Buffer) => n + b.length, 0);
    if (seen !== size) throw new Error(`message is ${seen} bytes, announced ${size}`);
    return body.slice();
  }
  const pieces: Buffer[] = [];
  for await (const chunk of exactly(body, size)) pieces.push(chunk);
  return pieces;
}

/** inMemory - BODY is the message's pieces already in memory (Array.isArray does not narrow a readonly array). */
export function inMemory(body: AsyncIterable<Buffer> | readonly Buffer[]): body is readonly Buffer[] {
  return Array.isArray(body);
}

/** iterate - pieces already in memory as the async iterable a streamed body is. */
export async function* iterate(pieces: readonly Buffer[]): AsyncIterable<Buffer> {
  yield* pieces;
}

/** exactly - BODY's chunks, failing when they add up to more or less than SIZE bytes. */
async function* exactly(body: AsyncIterable<Buffer>, size: number): AsyncIterable<Buffer> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.length;
    if (seen > size) throw new Error('message longer than announced');
    yield chunk;
  }
  if (seen !== size) throw new Error(`message is ${seen} bytes, announced ${size}`);
}

/**
 * writeSmallMessage - DATA as tmp/BASE, fdatasynced (mtime set when given) in one I/O job; then
 * renamed to `finalPath` and the folder fsynced in the folder's commit job, shared with
 * concurrent deliveries (GATHER: how long that job may wait for them); the folder's stamps
 * around that job. On failure nothing shows at `finalPath` and no tmp/ file is left.
 */
export async function writeSmallMessage(syncer: DirSyncer, dir: string, base: string, data: Buffer[], finalPath: string, mtime?: number, gather?: GatherOptions): Promise<DirCommit> {
  const tmpPath = path.join(dir, 'tmp', base);
  const folder = path.dirname(finalPath);
  // The folder's next batch waits (briefly) for this file: more renames share its fsync.
  const arrive = syncer.expect(folder);
  const write = () => runIo({ op: 'write', path: tmpPath, flags: 'wx', data, sync: true, close: true, mtime });
  try {
    try {
      await write();
    } catch (err) {
      // The Maildir was removed under us (e.g. by an administrator): make it again, once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await remakeMaildir(dir);
      await write();
    }
  } catch (err) {
    arrive();
    // A partial file is ours to remove, unless the exclusive create found someone else's.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') await removeFile(tmpPath).catch(() => {});
    throw err;
  }
  // Arrived and queued in the same turn, so the waiting batch takes it.
  arrive();
  return await renameIntoPlace(syncer, tmpPath, finalPath, gather);
}

/** renameIntoPlace - TMP renamed to FINAL in its folder's commit job; on failure TMP is removed. */
async function renameIntoPlace(syncer: DirSyncer, tmpPath: string, finalPath: string, gather?: GatherOptions): Promise<DirCommit> {
  try {
    return await syncer.sync(path.dirname(finalPath), { from: tmpPath, to: finalPath }, gather);
  } catch (err) {
    await removeFile(tmpPath).catch(() => {});
    throw err;
  }
}

/** remakeMaildir - tmp/, new/ and cur/ of DIR, made where missing (0700). */
async function remakeMaildir(dir: string): Promise<void> {
  await Promise.all(['tmp', 'new', 'cur'].map((sub) => fsp.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 })));
}
