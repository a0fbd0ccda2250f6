// LineReader - POP3 command lines from a socket, one at a time, with a length cap.
//
// Commands are handled strictly one after another, so pipelined lines wait here in a buffer
// that is bounded: the socket is paused while the buffer holds more than PAUSE_BYTES. A line
// longer than the cap is dropped up to its LF and reported as `too-long`; one that goes on
// past `absurdBytes` without any LF is reported as `absurd` (the session then hangs up).
// detach() forgets everything buffered - STLS uses it so plaintext pipelined after the
// command is never executed inside the TLS session (RFC 2595 §4).

import type { Duplex } from 'node:stream';

const PAUSE_BYTES = 64 * 1024;

export type ReadResult = { kind: 'line'; line: string } | { kind: 'too-long' } | { kind: 'absurd' } | null;

export class LineReader {
  /** buf[pos..] is what has not been taken yet (an offset, not a slice per line). */
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Bytes dropped so far of an overlong line whose LF has not come yet (0 = none). */
  private dropping = 0;
  private ended = false;
  private wake: (() => void) | null = null;
  private readonly onData = (chunk: Buffer): void => {
    if (this.dropping > 0 && this.pos === this.buf.length) {
      // Keep only what could follow the overlong line's LF.
      const lf = chunk.indexOf(10);
      if (lf < 0) {
        this.dropping += chunk.length;
        this.notify();
        return;
      }
      this.dropping += lf;
      this.buf = Buffer.concat([Buffer.from([10]), chunk.subarray(lf + 1)]);
    } else {
      this.buf = this.pos === this.buf.length ? chunk : Buffer.concat([this.buf.subarray(this.pos), chunk]);
    }
    this.pos = 0;
    if (this.buf.length > PAUSE_BYTES) this.socket.pause();
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  constructor(
    private socket: Duplex,
    private readonly maxLine: number,
    private readonly absurdBytes: number,
  ) {
    this.attach(socket);
  }

  private attach(socket: Duplex): void {
    this.socket = socket;
    this.ended = false;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  /** detach - stop reading from the socket and forget whatever it had sent. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.dropping = 0;
  }

  /** reattach - read from a new socket (the TLS one after STLS), starting empty. */
  reattach(socket: Duplex): void {
    this.detach();
    this.attach(socket);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** peekLines - up to `max` complete lines already buffered, left in place (for read-ahead). */
  peekLines(max: number): string[] {
    const out: string[] = [];
    if (this.dropping > 0) return out;
    let at = this.pos;
    while (out.length < max) {
      const lf = this.buf.indexOf(10, at);
      if (lf < 0 || lf + 1 - at > this.maxLine) break;
      const end = lf > at && this.buf[lf - 1] === 13 ? lf - 1 : lf;
      out.push(this.buf.toString('utf8', at, end));
      at = lf + 1;
    }
    return out;
  }

  /** hasLine - a complete line (or the end of an overlong one) is buffered: next() will not wait. */
  hasLine(): boolean {
    return this.buf.indexOf(10, this.pos) >= 0;
  }

  /** next - the next command line (CRLF or LF stripped), a length error, or null at the end. */
  async next(): Promise<ReadResult> {
    for (;;) {
      if (this.dropping > 0) {
        // The overlong line ends at the LF onData put back at the head of the buffer.
        if (this.pos < this.buf.length && this.buf[this.pos] === 10) {
          this.pos++;
          this.dropping = 0;
          return { kind: 'too-long' };
        }
        if (this.dropping > this.absurdBytes) return { kind: 'absurd' };
      } else {
        const at = this.pos;
        const lf = this.buf.indexOf(10, at);
        if (lf >= 0) {
          const tooLong = lf + 1 - at > this.maxLine;
          const end = lf > at && this.buf[lf - 1] === 13 ? lf - 1 : lf;
          const line = tooLong ? '' : this.buf.toString('utf8', at, end);
          this.pos = lf + 1;
          return tooLong ? { kind: 'too-long' } : { kind: 'line', line };
        }
        if (this.buf.length - at >= this.maxLine) {
          this.dropping = this.buf.length - at;
          this.buf = Buffer.alloc(0);
          this.pos = 0;
          continue;
        }
      }
      if (this.ended) return null;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (this.socket.isPaused()) this.socket.resume();
      });
    }
  }
}
