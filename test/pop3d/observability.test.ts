// What an administrator sees: one log line per login, RETR and logout (with the deleted
// count), the connections gauge, and the -ERR when deletions fail in the UPDATE state.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';

import { pino } from 'pino';

import { registry } from '../../src/shared/metrics.js';
import { waitFor } from '../helpers/tmp.js';
import { ALICE, ALICE_PW, startHarness } from './harness.js';
import { Pop3TestClient } from './pop3-client.js';

async function gauge(): Promise<number> {
  const m = (await registry.getSingleMetric('fmail_connections')!.get()).values.find((v) => v.labels.server === 'pop3d');
  return m?.value ?? 0;
}

test('log events pop3d.login, pop3d.retr, pop3d.logout; the connections gauge', async () => {
  const events: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) events.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const h = await startHarness({}, pino({ level: 'debug' }, sink));
  try {
    h.fakes.add(ALICE, 'Subject: a\r\n\r\nx\r\n');
    h.fakes.add(ALICE, 'Subject: b\r\n\r\ny\r\n');
    const before = await gauge();
    const c = await Pop3TestClient.connect(h.port);
    await waitFor(async () => (await gauge()) === before + 1);
    await c.login(ALICE, ALICE_PW);
    await c.multi('RETR 2');
    await c.cmd('DELE 1');
    await c.cmd('QUIT');
    await waitFor(() => events.some((e) => e.event === 'pop3d.logout'));
    await waitFor(async () => (await gauge()) === before);
    const login = events.find((e) => e.event === 'pop3d.login')!;
    assert.equal(login.user, ALICE);
    assert.equal(login.client, '127.0.0.1');
    const retr = events.find((e) => e.event === 'pop3d.retr')!;
    assert.equal(retr.n, 2);
    assert.equal(retr.user, ALICE);
    const logout = events.find((e) => e.event === 'pop3d.logout')!;
    assert.equal(logout.deleted, 1);
    assert.equal(logout.retr, 1, 'the logout line counts the RETRs (each one is a debug line)');
    assert.equal(logout.reason, 'quit');
  } finally {
    await h.close();
  }
});

test('QUIT answers -ERR [SYS/TEMP] when a deletion fails', async () => {
  const h = await startHarness();
  try {
    h.fakes.add(ALICE, 'Subject: a\r\n\r\nx\r\n');
    h.fakes.add(ALICE, 'Subject: b\r\n\r\ny\r\n');
    const c = await Pop3TestClient.connect(h.port);
    await c.login(ALICE, ALICE_PW);
    await c.cmd('DELE 1');
    await c.cmd('DELE 2');
    // Message 1 vanishes behind pop3d's back (another tool removed it): its dele fails.
    h.fakes.boxes.set(ALICE, h.fakes.boxes.get(ALICE)!.slice(1));
    assert.match(await c.cmd('QUIT'), /^-ERR \[SYS\/TEMP\]/);
    assert.equal(h.fakes.boxes.get(ALICE)!.length, 0, 'the other deletion still happened');
  } finally {
    await h.close();
  }
});
