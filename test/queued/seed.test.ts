// The seed's three Mail Queue Server examples, byte for byte on a raw socket.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';

import type { RunningServer } from '../../src/shared/server-module.js';
import { ipcSecret } from '../../src/shared/ipc-secret.js';
import { testConfig } from '../helpers/config.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { RawLine, startQueued, startSubscriber, writeSlot } from './helpers.js';

// Each example runs against its own fresh queued, so the three pass alone and in any order.
const dirs: Array<{ cleanup(): void }> = [];
after(() => dirs.forEach((d) => d.cleanup()));

async function withQueued(body: (ipc: string, secret: string, dir: string) => Promise<void>): Promise<void> {
  const tmp = tempDir('fmail-queued-seed-');
  dirs.push(tmp);
  const config = testConfig(tmp.dir);
  const queued: RunningServer = await startQueued(config);
  try {
    // The examples as a client sends them today: the secret handshake first (DESIGN.md).
    await body(queued.addresses.ipc!, ipcSecret(config)!, tmp.dir);
  } finally {
    await queued.close();
  }
}

/** pushOne - the first example's slot + push, for the examples that need a message queued. */
async function pushOne(c: RawLine, subject: string): Promise<string> {
  const slot = /^ok: (\S+)\r\n$/.exec(await c.exchange('slot: incoming\r\n'))![1]!;
  writeSlot(slot, `Subject: ${subject}\r\n\r\nhello\r\n`);
  assert.equal(await c.exchange(`push: incoming ; ${slot}\r\n`), 'ok\r\n');
  return slot;
}

test('seed: adding a message to a queue (slot, push)', () =>
  withQueued(async (ipc, secret, dir) => {
    const c = await RawLine.connect(ipc, secret);
    try {
      const slotLine = await c.exchange('slot: incoming\r\n');
      const m = /^ok: (\S+)\r\n$/.exec(slotLine);
      assert.ok(m, `slot reply ${JSON.stringify(slotLine)}`);
      const slot = m[1]!;
      assert.equal(path.dirname(slot), path.join(dir, 'queue', 'incoming', 'tmp'));
      assert.match(path.basename(slot), /^[0-9A-Z]{15}$/);
      writeSlot(slot, 'Subject: seed 1\r\n\r\nhello\r\n');
      assert.equal(await c.exchange(`push: incoming ; ${slot}\r\n`), 'ok\r\n');
    } finally {
      c.close();
    }
  }));

test('seed: getting a message from a queue (pop)', () =>
  withQueued(async (ipc, secret, dir) => {
    const c = await RawLine.connect(ipc, secret);
    try {
      await pushOne(c, 'seed 2');
      const line = await c.exchange('pop: incoming\r\n');
      const m = /^ok: (\S+)\r\n$/.exec(line);
      assert.ok(m, `pop reply ${JSON.stringify(line)}`);
      assert.equal(path.dirname(m[1]!), path.join(dir, 'queue', 'incoming', 'msg'));
      assert.equal(await c.exchange(`done: incoming ; ${m[1]}\r\n`), 'ok\r\n');
      assert.equal(await c.exchange('pop: incoming\r\n'), 'error\r\n');
    } finally {
      c.close();
    }
  }));

test('seed: subscribing to a queue, alert, pop until error', () =>
  withQueued(async (ipc, secret, dir) => {
    // The subscriber requires the secret too: queued's alert must present it.
    const sub = await startSubscriber(`unix://${path.join(dir, 'sub.sock')}`, secret);
    const c = await RawLine.connect(ipc, secret);
    try {
      assert.equal(await c.exchange(`subscribe: incoming ; ${sub.address}\r\n`), 'ok\r\n');
      assert.equal(sub.alerts.length, 0, 'no alert while the queue is empty');
      const slot = await pushOne(c, 'seed 3');
      await waitFor(() => sub.alerts.length >= 1);
      assert.deepEqual(sub.alerts, ['incoming']);
      const popped = /^ok: (\S+)\r\n$/.exec(await c.exchange('pop: incoming\r\n'));
      assert.ok(popped);
      assert.equal(path.basename(popped[1]!), path.basename(slot), 'the path keeps the queue id');
      assert.equal(await c.exchange('pop: incoming\r\n'), 'error\r\n');
      assert.equal(await c.exchange(`done: incoming ; ${popped[1]}\r\n`), 'ok\r\n');
      // The seed's spelling of unsubscribe.
      assert.equal(await c.exchange(`unsuscribe: incoming ; ${sub.address}\r\n`), 'ok\r\n');
    } finally {
      c.close();
      await sub.server.close();
    }
  }));
