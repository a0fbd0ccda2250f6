// The POP3 multi-line body: dot-stuffing, CRLF line ends and the terminating `.` line, applied
// on the fly to a message streamed from mailboxd (constant memory, any size), plus the TOP cut.
// The work is done by two small chunk-at-a-time classes; Transform wrappers are for streams.

import { Transform, type TransformCallback } from 'node:stream';

const DOT = Buffer.from('.');
const CRLF = Buffer.from('\r\n');
const LF = Buffer.from('\n');
const END = Buffer.from('.\r\n');
const EMPTY = Buffer.alloc(0);

/**
 * DotStuffer - RFC 1939 §3: a line starting with `.` gets one more; bare LF becomes CRLF; a
 * last line without its line end gets one; then `.` CRLF ends the response.
 */
export class DotStuffer {
  private atLineStart = true;
  private lastWasCR = false;

  /** encode - one chunk; only the places that change are cut out, the rest passes as slices. */
  encode(chunk: Buffer): Buffer {
    const n = chunk.length;
    if (n === 0) return EMPTY;
    const out: Buffer[] = [];
    let seg = 0;
    if (this.atLineStart && chunk[0] === 0x2e) out.push(DOT);
    for (let lf = chunk.indexOf(10); lf >= 0; lf = chunk.indexOf(10, lf + 1)) {
      const hasCR = lf > 0 ? chunk[lf - 1] === 13 : this.lastWasCR;
      if (!hasCR) {
        out.push(chunk.subarray(seg, lf), CRLF);
        seg = lf + 1;
      }
      if (lf + 1 < n && chunk[lf + 1] === 0x2e) {
        if (lf + 1 > seg) out.push(chunk.subarray(seg, lf + 1));
        out.push(DOT);
        seg = lf + 1;
      }
    }
    if (seg < n) out.push(seg === 0 ? chunk : chunk.subarray(seg));
    this.atLineStart = chunk[n - 1] === 10;
    this.lastWasCR = chunk[n - 1] === 13;
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** finish - the line end a last line may lack, and the terminator. */
  finish(): Buffer {
    if (this.atLineStart) return END;
    return Buffer.concat([this.lastWasCR ? LF : CRLF, END]);
  }
}

/**
 * TopCut - RFC 1939 TOP: the header, the blank line after it, then `lines` body lines; what
 * follows is dropped (the caller still reads it, so the IPC stream is consumed to its end).
 */
export class TopCut {
  private inHeader = true;
  private done = false;
  /** Bytes of the current line seen so far (before its LF), and its first byte. */
  private lineLen = 0;
  private firstByte = 0;

  constructor(private bodyLines: number) {}

  cut(chunk: Buffer): Buffer {
    if (this.done) return EMPTY;
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
      if (this.done) return chunk.subarray(0, pos);
    }
    return chunk;
  }
}

/** BodyEncoder - DotStuffer as a stream. */
export class BodyEncoder extends Transform {
  private readonly stuffer = new DotStuffer();

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, this.stuffer.encode(chunk));
  }

  override _flush(cb: TransformCallback): void {
    cb(null, this.stuffer.finish());
  }
}

/** TopFilter - TopCut as a stream. */
export class TopFilter extends Transform {
  private readonly top: TopCut;

  constructor(lines: number) {
    super();
    this.top = new TopCut(lines);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = this.top.cut(chunk);
    cb(null, out.length ? out : undefined);
  }
}
