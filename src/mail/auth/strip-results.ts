// StripOwnResults - a stream filter that removes, from the header section only, every
// Authentication-Results field whose authserv-id is ours (RFC 8601 5: a result claiming to be
// from us that we did not write is forged). Everything else passes byte for byte.
//
// Strategy: hold one header field at a time (its first line and continuation lines), decide
// when the next field starts; after the empty line that ends the header, chunks pass through
// untouched. A field longer than HOLD_MAX is passed on as it is (its start, where the id
// stands, has already been seen and was not ours).

import { Transform, type TransformCallback } from 'node:stream';

const HOLD_MAX = 64 * 1024;

export class StripOwnResults extends Transform {
  private inHeader = true;
  private carry = Buffer.alloc(0); // an incomplete line
  private field: Buffer[] = [];
  private fieldBytes = 0;
  private readonly own: RegExp;
  /** Fields removed so far. */
  removed = 0;

  constructor(authservId: string) {
    super();
    const id = authservId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // authserv-id, possibly after CFWS; then CFWS, ";" or the end of the value.
    this.own = new RegExp(`^authentication-results[ \\t]*:[\\s]*(?:\\([^)]*\\)[\\s]*)*${id}(?=[\\s;(]|$)`, 'i');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.inHeader) return cb(null, chunk);
    let buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = Buffer.alloc(0);
    let start = 0;
    while (this.inHeader) {
      const lf = buf.indexOf(10, start);
      if (lf < 0) break;
      this.line(buf.subarray(start, lf + 1));
      start = lf + 1;
    }
    if (!this.inHeader) {
      if (start < buf.length) this.push(buf.subarray(start));
      return cb();
    }
    buf = buf.subarray(start);
    if (buf.length > HOLD_MAX) {
      // One enormous line: not a field we could judge; let it through.
      this.flushField();
      this.push(buf);
    } else this.carry = Buffer.from(buf);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.carry.length) this.line(this.carry);
    this.carry = Buffer.alloc(0);
    this.decide();
    cb();
  }

  private line(l: Buffer): void {
    const first = l[0];
    if (first === 32 || first === 9) {
      // A continuation of the held field.
      this.field.push(l);
      this.fieldBytes += l.length;
      if (this.fieldBytes > HOLD_MAX) this.flushField();
      return;
    }
    this.decide();
    if (l.length <= 2 && (l[0] === 13 || l[0] === 10)) {
      this.inHeader = false;
      this.push(l);
      return;
    }
    this.field = [l];
    this.fieldBytes = l.length;
  }

  // The held field is complete: drop it if it is one of "our" results, else pass it on.
  private decide(): void {
    if (this.field.length === 0) return;
    const text = Buffer.concat(this.field).toString('latin1').replace(/\r?\n/g, '');
    if (this.own.test(text)) {
      this.removed++;
      this.field = [];
      this.fieldBytes = 0;
      return;
    }
    this.flushField();
  }

  private flushField(): void {
    for (const b of this.field) this.push(b);
    this.field = [];
    this.fieldBytes = 0;
  }
}
