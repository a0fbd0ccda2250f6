// QueueBackend - what index.ts and admin.ts need from where the messages live: the file spool
// (file-backend.ts, the default) or PostgreSQL (pg-backend.ts). The IPC checks (queue names,
// numbers) stay in index.ts; a backend refuses paths it did not hand out with QueueError.

import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';

import type { ServerDirectory } from './server-directory.js';

export type MsgState = 'slot' | 'ready' | 'leased' | 'deferred';

/** Meta - what a deferral leaves behind. */
export interface Meta {
  attempts: number;
  reason: string;
  /** Epoch ms before which the message is not handed out. */
  notBefore: number;
}

export interface ListedMessage {
  qid: string;
  queue: string;
  state: MsgState;
  /** Push time (epoch ms), or slot write time; NaN if unknown. */
  time: number;
  size: number;
  meta?: Meta;
}

export interface QueueCounts {
  ready: number;
  leased: number;
  deferred: number;
  slots: number;
}

/** A message's bytes, for `get` and `qshow`: a Buffer, or a stream of exactly SIZE bytes. */
export interface MessageData {
  size: number;
  body: Buffer | Readable;
}

/** A refusal with its enhanced status code: 5.5.4 a path or name we did not hand out, 4.3.x a storage failure. */
export class QueueError extends Error {
  constructor(
    message: string,
    readonly status = '5.5.4',
  ) {
    super(message);
  }
}

export interface QueueBackend {
  /** slot - a fresh file in QUEUE's tmp/ for the client to write (the queue made on first use). */
  slot(queue: string): Promise<string>;
  /** isSlot - P is an open slot of QUEUE (checked before `put` reads its bytes). */
  isSlot(queue: string, p: string): boolean;
  /** push - the written slot P durably queued; resolves with its qid. */
  push(queue: string, p: string, synced: boolean): Promise<string>;
  /** put - DATA as the message of slot P, durably queued; resolves with its qid. */
  put(queue: string, p: string, data: Buffer[]): Promise<string>;
  /** pop - lease the oldest ready message to OWNER (an IPC connection id): a local file PATH, or null. */
  pop(queue: string, owner: number): Promise<string | null>;
  /**
   * take - `pop` with the bytes when they are at most MAX (else null: read PATH as after pop);
   * absent: index.ts pops and reads.
   */
  take?(queue: string, owner: number, max: number): Promise<{ path: string; data: Buffer | null } | null>;
  /** copy - make sure the leased message P has its file at P (after a `take`); absent: pop always writes it. */
  copy?(queue: string, p: string): Promise<void>;
  /** abandon - OWNER's connection closed while holding P: the lease ends now. */
  abandon(queue: string, p: string, owner: number): void;
  done(queue: string, p: string): Promise<string>;
  /** renew - returns the seconds the lease has left. */
  renew(queue: string, p: string, owner: number, seconds?: number): Promise<number>;
  defer(queue: string, p: string, seconds: number, reason: string): Promise<Meta>;
  /** read - the bytes of a queued message (not a slot), by the PATH pop gave or its qid; null if unknown. */
  read(queue: string, pathOrQid: string): Promise<MessageData | null>;
  /** hasReady - QUEUE has mail waiting (a new subscriber is alerted at once). */
  hasReady(queue: string): Promise<boolean>;
  /** tick - expire leases, deferrals and slots; update the queue-size gauge. */
  tick(now: number): void;

  // Administration (admin.ts).
  stats(): Promise<Array<{ name: string; counts: QueueCounts }>>;
  list(queue: string | undefined, limit: number): Promise<ListedMessage[]>;
  /** show - a message's bytes in any state (slots included), by qid. */
  show(qid: string): Promise<MessageData | null>;
  flush(queue: string | undefined): Promise<number>;
  /** requeue / remove - the queue name the message was in, or null if there is none. */
  requeue(qid: string): Promise<string | null>;
  remove(qid: string): Promise<string | null>;

  /** Which servers run on which host, as they announce themselves (server-directory.ts). */
  readonly directory: ServerDirectory;

  close(): Promise<void>;
}

/** fileData - FILE's bytes as a stream of its size now, or null if it is gone. */
export async function fileData(file: string): Promise<MessageData | null> {
  const fh = await fsp.open(file, 'r').catch(() => null);
  if (!fh) return null;
  const { size } = await fh.stat();
  if (size === 0) {
    await fh.close();
    return { size: 0, body: Buffer.alloc(0) };
  }
  // The stream owns the open file: a concurrent `done` unlinking it does not cut it short.
  return { size, body: fh.createReadStream({ start: 0, end: size - 1 }) };
}
