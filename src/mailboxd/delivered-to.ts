// Delivered-To insertion: the header goes first, except after a leading `Return-Path:` header
// (the router writes it as the first line), which must stay first as in Postfix's local(8).

/** A Return-Path line longer than this is not waited for: Delivered-To goes first instead. */
const MAX_RETURN_PATH = 8192;
const RETURN_PATH = Buffer.from('return-path:');

/** deliveredToHeader - the header line; the recipient is checked to hold no line breaks. */
export function deliveredToHeader(recipient: string): Buffer {
  return Buffer.from(`Delivered-To: ${recipient}\r\n`, 'utf8');
}

/** startsLikeReturnPath - 1 yes, 0 no, -1 too few bytes to tell. */
function startsLikeReturnPath(buf: Buffer): number {
  const n = Math.min(buf.length, RETURN_PATH.length);
  for (let i = 0; i < n; i++) {
    const c = buf[i]!;
    const lower = c >= 0x41 && c <= 0x5a ? c + 32 : c;
    if (lower !== RETURN_PATH[i]) return 0;
  }
  return n === RETURN_PATH.length ? 1 : -1;
}

/** endOfHeaderField - offset just past the first header field (with folded lines), or -1. */
function endOfHeaderField(buf: Buffer, complete: boolean): number {
  let from = 0;
  for (;;) {
    const nl = buf.indexOf(10, from);
    if (nl < 0) return -1;
    if (nl + 1 >= buf.length) return complete ? nl + 1 : -1;
    const next = buf[nl + 1];
    if (next !== 0x20 && next !== 0x09) return nl + 1;
    from = nl + 1;
  }
}

/** withDeliveredTo - the message bytes with the header inserted, chunk by chunk. */
export async function* withDeliveredTo(source: AsyncIterable<Buffer>, header: Buffer): AsyncGenerator<Buffer> {
  let head: Buffer = Buffer.alloc(0);
  let decided = false;
  for await (const chunk of source) {
    if (decided) {
      yield chunk;
      continue;
    }
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const rp = startsLikeReturnPath(head);
    if (rp === -1) continue;
    const end = rp === 1 ? endOfHeaderField(head, false) : -1;
    if (end < 0) {
      if (rp === 1 && head.length <= MAX_RETURN_PATH) continue;
      decided = true;
      yield header;
      yield head;
      continue;
    }
    decided = true;
    yield head.subarray(0, end);
    yield header;
    if (end < head.length) yield head.subarray(end);
  }
  if (!decided) {
    // Short message: decide on what there is.
    const end = startsLikeReturnPath(head) === 1 ? endOfHeaderField(head, true) : -1;
    if (end > 0) {
      yield head.subarray(0, end);
      yield header;
      if (end < head.length) yield head.subarray(end);
    } else {
      yield header;
      if (head.length > 0) yield head;
    }
  }
}

/**
 * deliveredToParts - BODY (the whole message, in memory) with the header inserted: the pieces
 * withDeliveredTo yields for a source of one chunk, without its stream machinery.
 */
export function deliveredToParts(body: Buffer, header: Buffer): Buffer[] {
  const around = (end: number): Buffer[] => (end < body.length ? [body.subarray(0, end), header, body.subarray(end)] : [body.subarray(0, end), header]);
  const first = (): Buffer[] => (body.length > 0 ? [header, body] : [header]);
  const rp = startsLikeReturnPath(body);
  if (rp !== -1) {
    const end = rp === 1 ? endOfHeaderField(body, false) : -1;
    if (end >= 0) return around(end);
    if (!(rp === 1 && body.length <= MAX_RETURN_PATH)) return first();
  }
  // Undecided at the end of the bytes (a short message): decide on what there is.
  const end = startsLikeReturnPath(body) === 1 ? endOfHeaderField(body, true) : -1;
  return end > 0 ? around(end) : first();
}
