// ReplyOut - a session's replies, gathered in one buffer and written with one call when the
// session is about to wait for its client (or the buffer is full): a run of pipelined commands
// costs one write, not one each. A message file is read and dot-stuffed straight into the
// buffer (reserve, then commit), so a RETR allocates and copies nothing on its way out.
//
// Buffers come from a small pool of this thread. One the socket took whole (the usual
// synchronous write: nothing left in its queue) is filled again from the start; one the socket
// still holds a part of is left to it and to the garbage collector. An idle session holds none.

import type { Writable } from 'node:stream';

/** The size of a pooled buffer: also the most one write call carries. */
export const OUT_BYTES = 256 * 1024;
const POOL_MAX = 8;
const pool: Buffer[] = [];

export class ReplyOut {
  private buf: Buffer | null = null;
  /** buf[from, end) is gathered and not yet written. */
  private from = 0;
  private end = 0;

  constructor(private sock: Writable) {}

  /** setSocket - write to SOCK from now on (STLS; flush first). */
  setSocket(sock: Writable): void {
    // Bytes the old socket still holds must not be written over: a fresh buffer then.
    if (this.sock.writableLength > 0) {
      this.buf = null;
      this.from = this.end = 0;
    }
    this.sock = sock;
  }

  /** gathered - bytes waiting for flush(). */
  get gathered(): number {
    return this.end - this.from;
  }

  /** at - where the bytes reserve() made room for begin. */
  get at(): number {
    return this.end;
  }

  /** reserve - a buffer with at least N free bytes from `at` on (to the buffer's end); flushes if need be. */
  reserve(n: number): Buffer {
    const cur = this.buf;
    if (cur && cur.length - this.end >= n) return cur;
    this.flush();
    if (cur && this.end === 0 && cur.length >= n) return cur;
    // The socket still holds part of the old buffer (or none yet, or too small): a fresh one.
    const next = n <= OUT_BYTES ? (pool.pop() ?? Buffer.allocUnsafeSlow(OUT_BYTES)) : Buffer.allocUnsafeSlow(n);
    this.buf = next;
    this.from = this.end = 0;
    return next;
  }

  /** commit - N bytes written at `at` are part of the reply. */
  commit(n: number): void {
    this.end += n;
  }

  /** truncate - drop what was gathered from MARK (an earlier `at`, nothing flushed since) on. */
  truncate(mark: number): void {
    if (mark < this.from || mark > this.end) throw new Error('truncate past a flush');
    this.end = mark;
  }

  /** text - a reply line or lines (ASCII/UTF-8). */
  text(s: string): void {
    if (s.length > OUT_BYTES / 4) {
      this.flush();
      this.writeDirect(s);
      return;
    }
    const max = s.length * 3;
    const buf = this.reserve(max);
    this.end += buf.write(s, this.end, max, 'utf8');
  }

  /** bytes - raw reply bytes (copied; a big piece goes to the socket as it is, after what is gathered). */
  bytes(b: Buffer): void {
    if (b.length > OUT_BYTES / 4) {
      this.flush();
      this.writeDirect(b);
      return;
    }
    const buf = this.reserve(b.length);
    b.copy(buf, this.end);
    this.end += b.length;
  }

  /** flush - write what is gathered (back-pressure is the session's: pace). */
  flush(): void {
    if (this.sock.destroyed) {
      this.from = this.end = 0;
      return;
    }
    if (this.end > this.from) {
      this.sock.write(this.buf!.subarray(this.from, this.end));
      this.from = this.end;
    }
    // Written through (nothing queued): the whole buffer is free again.
    if (this.sock.writableLength === 0) this.from = this.end = 0;
  }

  /** idle - flush, and give the buffer back to the pool when the socket took it whole. */
  idle(): void {
    this.flush();
    if (this.buf && this.end === 0) {
      if (pool.length < POOL_MAX && this.buf.length === OUT_BYTES) pool.push(this.buf);
      this.buf = null;
    }
  }

  private writeDirect(data: string | Buffer): void {
    if (this.sock.destroyed) return;
    this.sock.write(data);
    // The gathered part of the buffer, if any, is written; the rest is still ours to fill.
    if (this.sock.writableLength === 0) this.from = this.end = 0;
  }
}
