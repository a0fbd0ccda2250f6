// The POP3 multi-line body: dot-stuffing, CRLF line ends and the terminating `.` line, applied
// chunk by chunk (constant memory, any size) to a file read directly or a message streamed from
// mailboxd, plus the TOP cut. The work is done by two small chunk-at-a-time classes; Transform
// wrappers are for streams.

import { Transform, type TransformCallback } from 'node:stream';

const CRLF = Buffer.from('\r\n');
const LF = Buffer.from('\n');
const END = Buffer.from('.\r\n');
const EMPTY = Buffer.alloc(0);

/** Where bytes go in (module scratch: stuffing is synchronous), grown on demand. */
let inserts = new Int32Array(4096);

/**
 * DotStuffer - RFC 1939 §3: a line starting with `.` gets one more; bare LF becomes CRLF; a
 * last line without its line end gets one; then `.` CRLF ends the response.
 *
 * The work is done in place (stuffInPlace): the chunk is scanned once for its LFs (one native
 * indexOf per line), the places where a byte goes in are noted, then the stretches between them
 * are moved right from the back with copyWithin, each byte at most once. No slice objects, no
 * concatenation: a chunk needing nothing costs its scan only.
 */
export class DotStuffer {
  private atLineStart = true;
  private lastWasCR = false;

  /** encode - one chunk: itself when nothing changes, else a new buffer. */
  encode(chunk: Buffer): Buffer {
    const n = chunk.length;
    if (n === 0) return EMPTY;
    const k = this.scan(chunk, 0, n);
    if (k === 0) {
      this.advance(chunk[n - 1]!);
      return chunk;
    }
    const out = Buffer.allocUnsafe(n + k);
    chunk.copy(out, 0, 0, n);
    this.advance(chunk[n - 1]!);
    spread(out, n, k);
    return out;
  }

  /**
   * stuffInPlace - encode buf[start, end) where it lies, the inserted bytes pushing it toward
   * `limit`; returns the new end, or -1 when they would not fit (then nothing was changed, the
   * state neither: encode() the same bytes instead).
   */
  stuffInPlace(buf: Buffer, start: number, end: number, limit: number): number {
    if (start === end) return end;
    const k = this.scan(buf, start, end);
    if (end + k > limit) return -1;
    this.advance(buf[end - 1]!);
    if (k > 0) spread(buf, end, k);
    return end + k;
  }

  /** finish - the line end a last line may lack, and the terminator. */
  finish(): Buffer {
    if (this.atLineStart) return END;
    return Buffer.concat([this.lastWasCR ? LF : CRLF, END]);
  }

  /** scan - note in `inserts` where bytes go in (before a bare LF: CR; before a leading dot: a dot); their count. */
  private scan(buf: Buffer, start: number, end: number): number {
    let k = 0;
    if (this.atLineStart && buf[start] === 0x2e) inserts[k++] = start;
    // A view ending at `end`: the last search must not run on into whatever lies beyond.
    const v = end === buf.length && start === 0 ? buf : buf.subarray(start, end);
    const n = end - start;
    for (let lf = v.indexOf(10); lf >= 0; lf = v.indexOf(10, lf + 1)) {
      if (k + 2 > inserts.length) {
        const grown = new Int32Array(inserts.length * 2);
        grown.set(inserts);
        inserts = grown;
      }
      if (lf > 0 ? v[lf - 1] !== 13 : !this.lastWasCR) inserts[k++] = start + lf;
      if (lf + 1 < n && v[lf + 1] === 0x2e) inserts[k++] = start + lf + 1;
    }
    return k;
  }

  private advance(last: number): void {
    this.atLineStart = last === 10;
    this.lastWasCR = last === 13;
  }
}

/**
 * spread - make room for the K bytes noted in `inserts` (ascending) in buf[.., end + k), from
 * the back: each stretch moves right by the number of insertions before it, then the byte in
 * front of it is set (CR before an LF, a dot before a dot).
 */
function spread(buf: Buffer, end: number, k: number): void {
  let segEnd = end;
  for (let j = k - 1; j >= 0; j--) {
    const p = inserts[j]!;
    buf.copyWithin(p + j + 1, p, segEnd);
    buf[p + j] = buf[p + j + 1] === 10 ? 13 : 0x2e;
    segEnd = p;
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

  /** complete - everything TOP sends has been cut: the rest need not be read. */
  get complete(): boolean {
    return this.done;
  }

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
