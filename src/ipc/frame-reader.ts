// FrameReader - pulls lines and raw byte runs, in order, from one socket.
//
// The IPC stream mixes CRLF lines with raw data of a known length (`store`, `retr`). One reader
// per socket hands out either a line or exactly N raw bytes, never both at once, and pauses the
// socket while nobody is reading so memory stays bounded by one line or one chunk.

import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';

import { MAX_LINE_BYTES } from './codec.js';

export class LineTooLongError extends Error {
  constructor() {
    super('line too long');
  }
}

export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private rawActive = false;

  constructor(
    private readonly socket: Socket,
    private readonly maxLine = MAX_LINE_BYTES,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      // Keep reading while the pending bytes could still be part of one line.
      if (this.buf.length > this.maxLine) socket.pause();
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (err) => {
      this.failure = err;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForData(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      if (this.socket.isPaused()) this.socket.resume();
    });
  }

  /** Bytes buffered but not yet handed out. */
  get buffered(): number {
    return this.buf.length;
  }

  /**
   * tryLine - a complete line if one is buffered (terminator stripped), undefined if more bytes
   * are needed, null at end of stream. Throws LineTooLongError.
   */
  tryLine(): string | null | undefined {
    const nl = this.buf.indexOf(10);
    if (nl >= 0) {
      if (nl + 1 > this.maxLine) throw new LineTooLongError();
      const end = nl > 0 && this.buf[nl - 1] === 13 ? nl - 1 : nl;
      const line = this.buf.toString('utf8', 0, end);
      this.buf = this.buf.subarray(nl + 1);
      return line;
    }
    if (this.buf.length >= this.maxLine) throw new LineTooLongError();
    if (this.failure) throw this.failure;
    if (this.ended) return null;
    return undefined;
  }

  /**
   * takeLines - up to MAX complete lines already buffered (terminators stripped), decoded in one
   * go: a 100,000-line `list` answer costs one string conversion, not 100,000.
   */
  takeLines(max: number): string[] {
    if (max <= 0) return [];
    let end = -1;
    let count = 0;
    for (let at = this.buf.indexOf(10); at >= 0 && count < max; at = this.buf.indexOf(10, at + 1)) {
      if (at - end > this.maxLine) break;
      end = at;
      count++;
    }
    if (count === 0) return [];
    const text = this.buf.toString('utf8', 0, end);
    this.buf = this.buf.subarray(end + 1);
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (l.length > 0 && l.charCodeAt(l.length - 1) === 13) lines[i] = l.slice(0, -1);
    }
    return lines;
  }

  /** readLine - the next line, or null at end of stream (a partial last line is dropped). */
  async readLine(): Promise<string | null> {
    for (;;) {
      const line = this.tryLine();
      if (line !== undefined) return line;
      await this.waitForData();
    }
  }

  /**
   * readRaw - a stream of exactly `length` bytes taken from the socket. The next line can only
   * be read after this stream has ended; it errors if the peer goes away first.
   */
  readRaw(length: number): Readable {
    if (this.rawActive) throw new Error('raw read already in progress');
    this.rawActive = true;
    const out = new PassThrough({ highWaterMark: 256 * 1024 });
    let remaining = length;
    const pump = async (): Promise<void> => {
      try {
        while (remaining > 0) {
          if (this.buf.length === 0) {
            if (this.failure) throw this.failure;
            if (this.ended) throw new Error('connection closed before the data was complete');
            await this.waitForData();
            continue;
          }
          const take = Math.min(remaining, this.buf.length);
          const piece = this.buf.subarray(0, take);
          this.buf = this.buf.subarray(take);
          remaining -= take;
          if (!out.write(piece)) {
            this.socket.pause();
            await new Promise<void>((resolve) => {
              const done = (): void => {
                out.off('drain', done);
                out.off('close', done);
                resolve();
              };
              out.on('drain', done);
              out.on('close', done);
            });
          }
          if (out.destroyed) throw new Error('raw consumer went away');
        }
        this.rawActive = false;
        out.end();
      } catch (err) {
        this.rawActive = false;
        out.destroy(err as Error);
      }
    };
    void pump();
    return out;
  }

  /** readRawBuffer - exactly `length` bytes, gathered in memory (for small payloads). */
  async readRawBuffer(length: number): Promise<Buffer> {
    if (this.rawActive) throw new Error('raw read already in progress');
    // Most replies are already buffered whole: no stream, no copy beyond the one slice.
    if (this.buf.length >= length) {
      const out = Buffer.from(this.buf.subarray(0, length));
      this.buf = this.buf.subarray(length);
      return out;
    }
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      if (this.buf.length === 0) {
        if (this.failure) throw this.failure;
        if (this.ended) throw new Error('connection closed before the data was complete');
        await this.waitForData();
        continue;
      }
      const take = Math.min(length - got, this.buf.length);
      this.buf.copy(out, got, 0, take);
      this.buf = this.buf.subarray(take);
      got += take;
    }
    return out;
  }

  /** skipRaw - read and discard `length` bytes (a handler that refused data mid-way). */
  async skipRaw(length: number): Promise<void> {
    for await (const _ of this.readRaw(length)) {
      // discarded
    }
  }
}
