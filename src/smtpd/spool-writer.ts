// spool-writer - streams one message from DATA into a slot of the `incoming` queue.
//
// Strategy ("write behind the wire"): the slot is asked for as DATA starts, the message bytes
// (already dot-unstuffed by smtp-server, which ends DATA only on <CRLF>.<CRLF>) go through a
// small scanner into a Slot (mail/spool.ts): a message up to 1 MiB is held and sent to queued
// with `put` (journaled with group commit, many messages per fdatasync); a bigger one goes
// into the slot file in 64 KiB pieces, so memory stays bounded whatever the size, then `push
// ; synced` (queued does not sync the file again). The caller answers 250 only after queued
// said `ok`.
//
// The scanner enforces the line-length limit and bare-LF policy: "normalize" writes a CR before
// each bare LF (Postfix's default; the stored message has clean CRLF lines), "reject" refuses
// the message (Postfix's 550 5.5.2). Once a message is refused or a write fails, the rest of
// DATA is read and dropped, so the reply still comes after the client's final dot.

import { type Transform, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

import type { SMTPServerDataStream } from 'smtp-server';

import { type IpcClient, errnoStatus } from '../ipc/index.js';
import { type Slot, SpoolError, openSlot } from '../mail/spool.js';
import { FLUSH_BYTES } from '../shared/durable.js';

export type SpoolOutcome =
  | { kind: 'queued'; qid: string; path: string; size: number }
  | { kind: 'too-big' }
  | { kind: 'bare-lf' }
  | { kind: 'line-too-long' }
  | { kind: 'refused'; code: number; text: string }
  /** STATUS: 4.3.1 when the disk is full (452), else 4.3.0 (451). */
  | { kind: 'failed'; error: string; status: string };

/** What `seal` decides once every byte is written: refuse, or patch bytes of the head in place. */
export type Seal = { refuse: { code: number; text: string } } | { patch: { at: number; bytes: Buffer } } | null;

export interface SpoolOptions {
  queued: IpcClient;
  /** The connection that carries this message's `put` (queued answers one put at a time per connection). */
  putVia?: IpcClient;
  /** The envelope block and Received header that go before the message, given the qid. */
  head(qid: string): Buffer;
  bareNewline: 'normalize' | 'reject';
  maxLineLength: number;
  /** A filter the message passes through first (mail checks: forged results removed). */
  filter?: Transform;
  /** Called after the last byte, before fsync (mail checks: their verdict and header). */
  seal?: () => Promise<Seal>;
}

const CR = Buffer.from('\r');

/** receiveData - write DATA to a new `incoming` slot and push it; never throws. */
export async function receiveData(data: SMTPServerDataStream, opts: SpoolOptions): Promise<SpoolOutcome> {
  const sink = new SpoolSink(data, opts);
  if (opts.filter) data.pipe(opts.filter).pipe(sink);
  else data.pipe(sink);
  await finished(sink).catch(() => {});
  return sink.conclude();
}

class SpoolSink extends Writable {
  private slot: Slot | null = null;
  private readonly ready: Promise<void>;
  private failure: string | null = null;
  private status = '4.3.0';
  private refused: 'too-big' | 'bare-lf' | 'line-too-long' | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;
  private lastByte = -1;
  private lineLen = 0;

  constructor(
    private readonly data: SMTPServerDataStream,
    private readonly opts: SpoolOptions,
  ) {
    super({ highWaterMark: FLUSH_BYTES });
    this.ready = this.open().catch((err: unknown) => {
      this.fail(`slot: ${String((err as Error).message ?? err)}`, err);
    });
  }

  private async open(): Promise<void> {
    this.slot = await openSlot(this.opts.queued, 'incoming', this.opts.putVia);
    // Written before any flush can run (flush awaits `ready`), so it heads the message.
    await this.slot.write(this.opts.head(this.slot.qid));
  }

  private get stopped(): boolean {
    return this.failure !== null || this.refused !== null;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.data.sizeExceeded) this.refused ??= 'too-big';
    if (this.stopped) return cb();
    this.scan(chunk);
    if (this.stopped || this.pendingBytes < FLUSH_BYTES) return cb();
    this.flush().then(() => cb(), () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.data.sizeExceeded) this.refused ??= 'too-big';
    this.flush().then(() => cb(), () => cb());
  }

  // Line length and bare LF, in one pass over the chunk's LFs.
  private scan(chunk: Buffer): void {
    let start = 0;
    let from = 0;
    for (;;) {
      const lf = chunk.indexOf(10, from);
      if (lf < 0) break;
      const prev = lf > 0 ? chunk[lf - 1] : this.lastByte;
      this.lineLen += lf - from;
      if (this.lineLen > this.opts.maxLineLength + 1) this.refused ??= 'line-too-long';
      this.lineLen = 0;
      if (prev !== 13) {
        if (this.opts.bareNewline === 'reject') {
          this.refused ??= 'bare-lf';
          return;
        }
        this.queue(chunk.subarray(start, lf));
        this.queue(CR);
        start = lf;
      }
      from = lf + 1;
    }
    this.lineLen += chunk.length - from;
    if (this.lineLen > this.opts.maxLineLength + 1) this.refused ??= 'line-too-long';
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1]!;
    this.queue(chunk.subarray(start));
  }

  private queue(b: Buffer): void {
    if (b.length === 0) return;
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private async flush(): Promise<void> {
    await this.ready;
    if (this.stopped || !this.slot) {
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    try {
      await this.slot.write(buf);
      this.written += buf.length;
    } catch (err) {
      this.fail(`write: ${(err as Error).message}`, err);
    }
  }

  /** conclude - after DATA: the rest of the bytes to queued (put, or fdatasync + push), or clean up and say why not. */
  async conclude(): Promise<SpoolOutcome> {
    await this.ready;
    if (this.data.sizeExceeded) this.refused ??= 'too-big';
    const slot = this.slot;
    if (!this.stopped && slot) {
      try {
        const seal = this.opts.seal ? await this.opts.seal() : null;
        if (seal && 'refuse' in seal) {
          await slot.abort();
          return { kind: 'refused', ...seal.refuse };
        }
        if (seal) slot.patch(seal.patch.at, seal.patch.bytes);
        await slot.push();
        return { kind: 'queued', qid: slot.qid, path: slot.path, size: this.written };
      } catch (err) {
        this.fail((err as Error).message, err);
        // queued says why by its status code: 4.3.1 is its disk full.
        if (err instanceof SpoolError && /^4\.3\.1\b/.test(err.reason)) this.status = '4.3.1';
        // A push whose answer never came may still have queued the file: keep it then (the
        // client retries after our 451, so at worst the message arrives twice, never zero times).
        if (!(err instanceof SpoolError)) return { kind: 'failed', error: this.failure ?? 'no answer', status: this.status };
      }
    }
    // Never pushed, so never acknowledged: the partial file can go (queued also expires slots).
    await slot?.abort();
    if (this.refused) return { kind: this.refused };
    return { kind: 'failed', error: this.failure ?? 'no slot', status: this.status };
  }

  // fail - the first failure wins; a full disk (ENOSPC) is remembered as 4.3.1.
  private fail(message: string, err: unknown): void {
    if (this.failure !== null) return;
    this.failure = message;
    if (errnoStatus(err) === '4.3.1') this.status = '4.3.1';
  }
}
