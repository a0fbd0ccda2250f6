// Writing a new message into a queue of queued: `slot`, write envelope + bytes, fsync, `push`.
// Shared by the router (requeueing the remaining recipients), smtp-out (its `outgoing` copies)
// and bounces (a DSN queued into `incoming`).

import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

import type { IpcClient } from '../ipc/index.js';
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

/**
 * spoolMessage - slot a file in QUEUE, write envelope and body (Buffer or stream), fsync,
 * push. An envelope without qid gets the slot's (its file name), as smtpd does. Resolves with
 * the path and qid once queued holds the file durably; throws otherwise.
 */
export async function spoolMessage(queued: IpcClient, queue: string, envelope: Envelope, body: Buffer | Readable): Promise<{ file: string; qid: string }> {
  const slot = await queued.request('slot', [queue]);
  if (!slot.ok || !slot.params[0]) throw new SpoolError(`slot ${queue}: ${slot.params[0] ?? 'refused'}`, slot.params[0] ?? '');
  const file = slot.params[0];
  const qid = envelope.qid || path.basename(file);
  const fh = await open(file, 'w', 0o600);
  try {
    await fh.write(formatEnvelope({ ...envelope, qid }));
    if (Buffer.isBuffer(body)) {
      await fh.write(body);
    } else {
      for await (const chunk of body) await fh.write(chunk as Buffer);
    }
    await fh.sync();
  } catch (err) {
    // Never pushed: a partial slot would only hold disk space (a full disk) until it expires.
    await fh.close().catch(() => {});
    await rm(file, { force: true }).catch(() => {});
    throw err;
  }
  await fh.close();
  const pushed = await queued.request('push', [queue, file]);
  if (!pushed.ok) throw new SpoolError(`push ${queue}: ${pushed.params[0] ?? 'refused'}`, pushed.params[0] ?? '');
  return { file, qid };
}
