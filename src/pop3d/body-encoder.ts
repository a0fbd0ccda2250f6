// The POP3 multi-line body: dot-stuffing, CRLF line ends and the terminating `.` line, applied
// on the fly to a message streamed from mailboxd (constant memory, any size), plus the TOP cut.

import { Transform, type TransformCallback } from 'node:stream';

const DOT = Buffer.from('.');
const CRLF = Buffer.from('\r\n');
const LF = Buffer.from('\n');
const END = Buffer.from('.\r\n');

/**
 * BodyEncoder - RFC 1939 §3: a line starting with `.` gets one more; bare LF becomes CRLF; a
 * last line without its line end gets one; then `.` CRLF ends the response.
 */
export class BodyEncoder extends Transform {
  private atLineStart = true;
  private lastWasCR = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out: Buffer[] = [];
    let start = 0;
    const n = chunk.length;
    while (start < n) {
      if (this.atLineStart && chunk[start] === 0x2e) out.push(DOT);
      this.atLineStart = false;
      const lf = chunk.indexOf(10, start);
      if (lf < 0) {
        out.push(start === 0 ? chunk : chunk.subarray(start));
        this.lastWasCR = chunk[n - 1] === 13;
        break;
      }
      const hasCR = lf > start ? chunk[lf - 1] === 13 : this.lastWasCR;
      if (hasCR) {
        out.push(chunk.subarray(start, lf + 1));
      } else {
        out.push(chunk.subarray(start, lf), CRLF);
      }
      this.atLineStart = true;
      this.lastWasCR = false;
      start = lf + 1;
    }
    cb(null, out.length === 1 ? out[0] : Buffer.concat(out));
  }

  override _flush(cb: TransformCallback): void {
    if (!this.atLineStart) this.push(this.lastWasCR ? LF : CRLF);
    this.push(END);
    cb();
  }
}

/**
 * TopFilter - RFC 1939 TOP: the header, the blank line after it, then `lines` body lines;
 * the rest is read and dropped (the IPC connection must still see every byte go by).
 */
export class TopFilter extends Transform {
  private inHeader = true;
  private done = false;
  /** Bytes of the current line seen so far (before its LF), and its first byte. */
  private lineLen = 0;
  private firstByte = 0;

  constructor(private bodyLines: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.done) return cb();
    let pos = 0;
    while (pos < chunk.length) {
      if (this.lineLen === 0) this.firstByte = chunk[pos]!;
      const lf = chunk.indexOf(10, pos);
      if (lf < 0) {
        this.lineLen += chunk.length - pos;
        break;
      }
      const len = this.lineLen + (lf - pos);
      const blank = len === 0 || (len === 1 && this.firstByte === 13);
      this.lineLen = 0;
      pos = lf + 1;
      if (this.inHeader) {
        if (blank) this.inHeader = false;
        if (blank && this.bodyLines === 0) this.done = true;
      } else if (--this.bodyLines === 0) {
        this.done = true;
      }
      if (this.done) return cb(null, chunk.subarray(0, pos));
    }
    cb(null, chunk);
  }
}
