// Writing a new message into a queue of queued: `slot` (a queue id), then the bytes: over IPC
// (`put`, journaled by queued with group commit) when small, else into the slot's file
// (DurableFile: write, fdatasync, close in as few hops as possible) and `push ; synced`, so
// queued renames it without syncing it a second time. smtpd streams DATA through a Slot; the
// router (requeueing the remaining recipients), smtp-out (its `outgoing` copies) and bounces
// (a DSN queued into `incoming`) use spoolMessage.

import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';

import { type IpcClient, errnoStatus } from '../ipc/index.js';
import { DurableFile } from '../shared/durable.js';
import { type Envelope, formatEnvelope } from './envelope.js';

/** queued refused `slot` or `push`; REASON is its error text (with its status code, e.g. `4.3.1 ...`). */
export class SpoolError extends Error {
  constructor(
    message: string,
    readonly reason = '',
  ) {
    super(message);
  }
}

/** fileBody - the message bytes of a queue file (after its envelope), as a stream. */
export function fileBody(file: string, bodyOffset: number): Readable {
  return createReadStream(file, { start: bodyOffset, highWaterMark: 256 * 1024 });
}

/** Messages up to this size go to queued over IPC (`put`); bigger ones are written into the slot file. */
export const PUT_LIMIT = 1024 * 1024;
/** queued's largest `put`: the limit for a writer that cannot write slot files. */
export const REMOTE_PUT_LIMIT = 64 * 1024 * 1024;

// Connections to a queued whose spool is not on this host (`queue_colocated = false`): their
// slots are never written as files, every message goes with `put` (its slot PATH only names it).
const remote = new WeakSet<IpcClient>();

/** queueIsRemote - QUEUED's disk is not ours: slots opened through it send their bytes with `put` only. */
export function queueIsRemote(queued: IpcClient): void {
  remote.add(queued);
}

/**
 * Slot - one new message for a queue. Small: held in memory, then `put` (queued journals it with
 * group commit). Big: written into the slot's file as it comes (a DurableFile), then `push ;
 * synced`. Either way it is durably queued once push() resolves.
 */
export class Slot {
  private mem: Buffer[] | null = [];
  private memBytes = 0;
  private file: DurableFile | null = null;

  constructor(
    readonly queue: string,
    readonly path: string,
    private readonly queued: IpcClient,
    private readonly putVia: IpcClient,
  ) {
    this.limit = remote.has(queued) ? REMOTE_PUT_LIMIT : PUT_LIMIT;
  }

  private readonly limit: number;

  /** qid - the slot's queue id (its file name). */
  get qid(): string {
    return path.basename(this.path);
  }

  async write(buf: Buffer): Promise<void> {
    if (this.mem) {
      if (this.memBytes + buf.length <= this.limit) {
        this.mem.push(buf);
        this.memBytes += buf.length;
        return;
      }
      if (this.limit !== PUT_LIMIT) throw new SpoolError(`message over ${this.limit} bytes: too big for put to a queued on another host`, '5.3.4');
      await this.toFile();
    }
    await this.file!.write(buf);
  }

  /** push - hand the message to queued; throws SpoolError when queued refused it. */
  async push(): Promise<void> {
    if (this.mem) {
      const r = await this.putVia.storeNow('put', [this.queue, this.path, String(this.memBytes)], Buffer.concat(this.mem, this.memBytes));
      if (r.ok) return;
      // A queued without `put` (older, or another implementation): the seed's way.
      if (!/unknown message/.test(r.params[0] ?? '') || this.limit !== PUT_LIMIT) throw new SpoolError(`put ${this.queue}: ${r.params[0] ?? 'refused'}`, r.params[0] ?? '');
      await this.toFile();
    }
    try {
      await this.file!.commit();
    } catch (err) {
      throw new SpoolError(`write ${this.path}: ${(err as Error).message}`, errnoStatus(err));
    }
    const pushed = await this.queued.request('push', [this.queue, this.path, 'synced']);
    if (!pushed.ok) throw new SpoolError(`push ${this.queue}: ${pushed.params[0] ?? 'refused'}`, pushed.params[0] ?? '');
  }

  /** patch - overwrite BYTES at offset AT of what was written (a header filled in at the end). */
  patch(at: number, bytes: Buffer): void {
    if (!this.mem) {
      this.file!.patch(at, bytes);
      return;
    }
    // The head is the first buffers written; copy into whichever buffers cover [at, at + length).
    let pos = 0;
    for (const b of this.mem) {
      const from = Math.max(at, pos);
      const to = Math.min(at + bytes.length, pos + b.length);
      if (from < to) bytes.copy(b, from - pos, from - at, to - at);
      pos += b.length;
      if (pos >= at + bytes.length) break;
    }
  }

  /** abort - forget the message; a file written so far is removed. Never throws. */
  async abort(): Promise<void> {
    this.mem = null;
    await this.file?.abort();
  }

  private async toFile(): Promise<void> {
    const mem = this.mem ?? [];
    this.mem = null;
    this.file = new DurableFile(this.path);
    for (const b of mem) await this.file.write(b);
  }
}

/** openSlot - a new slot of QUEUE; PUTVIA carries its `put` (default: QUEUED itself). */
export async function openSlot(queued: IpcClient, queue: string, putVia: IpcClient = queued): Promise<Slot> {
  const r = await queued.request('slot', [queue]);
  const file = r.params[0] ?? '';
  if (!r.ok || !file) throw new SpoolError(`slot ${queue}: ${r.params[0] ?? 'refused'}`, r.params[0] ?? '');
  if (!path.isAbsolute(file)) throw new SpoolError(`slot path not absolute: ${file}`);
  return new Slot(queue, file, queued, putVia);
}

/**
 * spoolMessage - slot a file in QUEUE, write envelope and body (Buffer or stream), push. An
 * envelope without qid gets the slot's (its file name), as smtpd does. Resolves with the path
 * and qid once queued holds the file durably; throws otherwise (the slot file removed).
 */
export async function spoolMessage(queued: IpcClient, queue: string, envelope: Envelope, body: Buffer | Readable): Promise<{ file: string; qid: string }> {
  const slot = await openSlot(queued, queue);
  const qid = envelope.qid || slot.qid;
  try {
    await slot.write(formatEnvelope({ ...envelope, qid }));
    if (Buffer.isBuffer(body)) await slot.write(body);
    else for await (const chunk of body) await slot.write(chunk as Buffer);
    await slot.push();
  } catch (err) {
    await slot.abort();
    throw err;
  }
  return { file: slot.path, qid };
}
