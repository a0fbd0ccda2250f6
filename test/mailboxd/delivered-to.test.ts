// Delivered-To insertion: the in-memory form (in-thread stores) gives the same bytes as the
// streamed one, for every shape of first header line.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { deliveredToHeader, deliveredToParts, withDeliveredTo } from '../../src/mailboxd/delivered-to.js';

async function streamed(body: Buffer, header: Buffer, chunk: number): Promise<Buffer> {
  async function* pieces(): AsyncIterable<Buffer> {
    for (let i = 0; i < body.length; i += chunk) yield body.subarray(i, i + chunk);
  }
  const out: Buffer[] = [];
  for await (const b of withDeliveredTo(pieces(), header)) out.push(b);
  return Buffer.concat(out);
}

test('deliveredToParts = withDeliveredTo on one chunk; Return-Path stays first', async () => {
  const header = deliveredToHeader('alice@example.test');
  const bodies = [
    '',
    'Ret',
    'Subject: hi\r\n\r\nbody\r\n',
    'Return-Path: <a@example.net>\r\nSubject: hi\r\n\r\nbody\r\n',
    'return-path: <a@example.net>\r\n\tfolded\r\nSubject: x\r\n\r\n',
    'Return-Path: <a@example.net>',
    'Return-Path: <a@example.net>\r\n',
    `Return-Path: <${'x'.repeat(9000)}@example.net>\r\nSubject: long\r\n\r\n`,
    `Return-Path: <${'x'.repeat(9000)}@example.net>`,
  ].map((s) => Buffer.from(s));
  for (const body of bodies) {
    const whole = Buffer.concat(deliveredToParts(body, header));
    assert.deepEqual(whole, await streamed(body, header, Math.max(1, body.length)), JSON.stringify(body.toString().slice(0, 40)));
  }
  const rp = Buffer.concat(deliveredToParts(bodies[3]!, header)).toString();
  assert.ok(rp.startsWith('Return-Path: <a@example.net>\r\nDelivered-To: alice@example.test\r\nSubject: hi'));
  assert.ok(Buffer.concat(deliveredToParts(bodies[2]!, header)).toString().startsWith('Delivered-To: alice@example.test\r\nSubject: hi'));
});
