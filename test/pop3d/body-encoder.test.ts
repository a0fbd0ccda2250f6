// The POP3 body transforms: dot-stuffing, CRLF line ends, the `.` terminator, the TOP cut,
// whatever the chunk boundaries.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { test } from 'node:test';

import fc from 'fast-check';

import { BodyEncoder, DotStuffer, TopFilter } from '../../src/pop3d/body-encoder.js';

/** encode - run `data` cut into `chunks` pieces through the transforms. */
async function encode(data: Buffer, cuts: number[], top?: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let at = 0;
  for (const c of [...new Set(cuts)].filter((c) => c > 0 && c < data.length).sort((a, b) => a - b)) {
    pieces.push(data.subarray(at, c));
    at = c;
  }
  pieces.push(data.subarray(at));
  let s: NodeJS.ReadableStream = Readable.from(pieces.filter((p) => p.length > 0));
  if (top !== undefined) s = s.pipe(new TopFilter(top));
  return buffer(s.pipe(new BodyEncoder()));
}

/** reference - the same rules written the slow, obvious way. */
function reference(data: Buffer): Buffer {
  let text = data.toString('latin1');
  // A last line without LF gets one (a trailing CR becomes the CR of that CR LF).
  if (text.length > 0 && !text.endsWith('\n')) text += '\n';
  text = text.replace(/\r?\n/g, '\n');
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  return Buffer.from(lines.map((l) => (l.startsWith('.') ? '.' + l : l) + '\r\n').join('') + '.\r\n', 'latin1');
}

test('dot-stuffing, CRLF and the terminator', async () => {
  const msg = Buffer.from('Subject: x\r\n\r\n.\r\n..two\r\n.lead\r\nmid.dle\r\nend');
  assert.equal((await encode(msg, [])).toString(), 'Subject: x\r\n\r\n..\r\n...two\r\n..lead\r\nmid.dle\r\nend\r\n.\r\n');
  assert.equal((await encode(Buffer.alloc(0), [])).toString(), '.\r\n');
  assert.equal((await encode(Buffer.from('a\nb\n'), [])).toString(), 'a\r\nb\r\n.\r\n');
  // A CR LF split over two chunks is still one line end.
  assert.equal((await encode(Buffer.from('a\r\n.b\r\n'), [2])).toString(), 'a\r\n..b\r\n.\r\n');
  // A dot at the start of a chunk that is not the start of a line is left alone.
  assert.equal((await encode(Buffer.from('ab.c\r\n'), [2])).toString(), 'ab.c\r\n.\r\n');
});

test('8-bit bytes pass through untouched', async () => {
  const msg = Buffer.concat([Buffer.from('Subject: \xe4\r\n\r\n', 'latin1'), Buffer.from('Grüße ✓\r\n'), Buffer.from([0x80, 0xff, 0x00, 0x0d, 0x0a])]);
  const out = await encode(msg, [3, 17]);
  assert.ok(out.equals(Buffer.concat([msg, Buffer.from('.\r\n')])));
});

test('property: any bytes, any chunking, same as the reference', async () => {
  const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a.map((b) => [10, 13, 46, 65, b][b % 5]!)));
  await fc.assert(
    fc.asyncProperty(bytes, fc.array(fc.nat(300), { maxLength: 6 }), async (data, cuts) => {
      assert.deepEqual((await encode(data, cuts)).toString('latin1'), reference(data).toString('latin1'));
    }),
    { numRuns: 300 },
  );
});

/** inPlace - `data` cut at `cuts`, each piece copied into a buffer with SLACK spare bytes and stuffed where it lies (encode() when it does not fit). */
function inPlace(data: Buffer, cuts: number[], slack: number): Buffer {
  const st = new DotStuffer();
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...[...new Set(cuts)].filter((c) => c > 0 && c < data.length).sort((a, b) => a - b), data.length]) {
    const piece = data.subarray(at, c);
    at = c;
    // Garbage around the piece (LFs and dots too): nothing outside [start, end) may be read as part of it.
    const buf = Buffer.alloc(7 + piece.length + slack + 5, '\n.');
    piece.copy(buf, 7);
    const end = st.stuffInPlace(buf, 7, 7 + piece.length, 7 + piece.length + slack);
    out.push(end >= 0 ? Buffer.from(buf.subarray(7, end)) : st.encode(piece));
  }
  out.push(st.finish());
  return Buffer.concat(out);
}

test('property: stuffing in place (any spare room, falling back to encode) is the same as the reference', () => {
  const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a.map((b) => [10, 13, 46, 65, b][b % 5]!)));
  fc.assert(
    fc.property(bytes, fc.array(fc.nat(300), { maxLength: 6 }), fc.nat(40), (data, cuts, slack) => {
      assert.deepEqual(inPlace(data, cuts, slack).toString('latin1'), reference(data).toString('latin1'));
    }),
    { numRuns: 500 },
  );
  // No room at all: every piece that needs a byte falls back; one that needs none is left as it is.
  assert.equal(inPlace(Buffer.from('.a\nb\r\n'), [3], 0).toString(), '..a\r\nb\r\n.\r\n');
});

test('TOP: headers, the blank line, n body lines', async () => {
  const msg = Buffer.from('A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n');
  assert.equal((await encode(msg, [], 0)).toString(), 'A: 1\r\nB: 2\r\n\r\n.\r\n');
  assert.equal((await encode(msg, [7, 13], 2)).toString(), 'A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n');
  assert.equal((await encode(msg, [], 99)).toString(), 'A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n');
  // Bare LF ends the header too; no blank line at all = all header.
  assert.equal((await encode(Buffer.from('A: 1\n\nb1\nb2\n'), [], 1)).toString(), 'A: 1\r\n\r\nb1\r\n.\r\n');
  assert.equal((await encode(Buffer.from('A: 1\r\nB: 2'), [], 0)).toString(), 'A: 1\r\nB: 2\r\n.\r\n');
});
