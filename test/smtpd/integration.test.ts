// smtpd with the real authd and queued (startSystem): users from DATA/users, messages popped
// back from `incoming` and compared byte for byte; the refusals decided by the real authd.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type System, startSystem } from '../../src/cli/start.js';
import { IpcClient } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { RawSmtp, dotStuff, greet, plainToken, readQueued, sendMessage } from './harness.js';

describe('smtpd + real authd + real queued', () => {
  const tmp = tempDir('fmail-smtpd-int-');
  let sys: System;
  let queued: IpcClient;
  let smtp = 0;
  let submission = 0;

  before(async () => {
    writeFileSync(path.join(tmp.dir, 'users'), 'alice@example.test:{PLAIN}secret::::::\nbob@example.test:{PLAIN}hunter2::::::\n');
    writeFileSync(path.join(tmp.dir, 'aliases'), 'sales@example.test: alice@example.test\n');
    const config = testConfig(tmp.dir, { smtpd: { auth_failure_delay_ms: 50 } });
    sys = await startSystem(config, silentLogger(), ['authd', 'queued', 'smtpd']);
    const smtpd = sys.servers.find((s) => s.name === 'smtpd')!;
    smtp = Number(smtpd.addresses.smtp!.split(':').pop());
    submission = Number(smtpd.addresses.submission!.split(':').pop());
    queued = testClient(config, config.ipc.queued);
  });
  after(async () => {
    queued?.close();
    await sys?.stop();
    tmp.cleanup();
  });

  /** popOne - the next message of `incoming`, then `done` so the queue stays clean. */
  async function popOne(): Promise<ReturnType<typeof readQueued>> {
    const r = await queued.request('pop', ['incoming']);
    assert.ok(r.ok, 'a message in incoming');
    const q = readQueued(r.params[0]!);
    assert.ok((await queued.request('done', ['incoming', r.params[0]!])).ok);
    return q;
  }

  test('MX: local recipient accepted and queued durably, byte-exact; unknown user and relay refused', async () => {
    const { c } = await greet(smtp);
    const body = Buffer.from('Subject: real\r\n\r\n.dot\r\n8bit \xe9\r\n' + 'w'.repeat(998) + '\r\n', 'latin1');
    const r = await sendMessage(c, 'someone@example.net', ['alice@example.test', 'sales@example.test'], dotStuff(body));
    assert.equal(r.code, 250, r.text);
    const qid = /queued as (\S+)/.exec(r.text)![1]!;
    const q = await popOne();
    assert.equal(q.envelope.qid, qid);
    assert.deepEqual(q.envelope.rcpt, ['alice@example.test', 'sales@example.test']);
    assert.ok(q.body.equals(body));
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
    assert.match((await c.cmd('RCPT TO:<nobody@example.test>')).lines[0]!, /^550 5\.1\.1 /);
    assert.match((await c.cmd('RCPT TO:<x@elsewhere.example>')).lines[0]!, /^554 5\.7\.1 /);
    c.close();
  });

  test('submission: STARTTLS + AUTH with the real authd, relay allowed, sender ownership enforced', async () => {
    const { c } = await greet(submission);
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    await c.cmd('EHLO client.example.net');
    assert.equal((await c.cmd(`AUTH PLAIN ${plainToken('alice@example.test', 'nope')}`)).code, 535);
    assert.equal((await c.cmd(`AUTH PLAIN ${plainToken('alice@example.test', 'secret')}`)).code, 235);
    assert.match((await c.cmd('MAIL FROM:<bob@example.test>')).lines[0]!, /^553 5\.7\.1 /);
    await c.cmd('RSET');
    const r = await sendMessage(c, 'sales@example.test', ['friend@remote.example'], Buffer.from('Subject: out\r\n\r\nhi\r\n'));
    assert.equal(r.code, 250, r.text);
    const q = await popOne();
    assert.equal(q.envelope.auth, 'alice@example.test');
    assert.equal(q.envelope.from, 'sales@example.test');
    assert.match(q.received, /with ESMTPSA id /);
    c.close();
  });

  test('many pipelined transactions on one connection are all queued', async () => {
    const c = await RawSmtp.connect(smtp);
    await c.reply();
    await c.cmd('EHLO pipe.example.net');
    const n = 20;
    // As RFC 2920 pipelines (and Postfix's client): MAIL, RCPT, DATA in one group, then after
    // the 354 the message, its dot and the next transaction's MAIL, RCPT, DATA in the next.
    const codes: number[] = [];
    const group = (i: number): string => `MAIL FROM:<p${i}@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n`;
    c.write(group(0));
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 3; k++) codes.push((await c.reply()).code);
      c.write(`Subject: ${i}\r\n\r\nbody ${i}\r\n.\r\n${i + 1 < n ? group(i + 1) : 'QUIT\r\n'}`);
      codes.push((await c.reply()).code);
    }
    codes.push((await c.reply()).code);
    assert.deepEqual(codes, [...Array.from({ length: n }, () => [250, 250, 354, 250]).flat(), 221]);
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add((await popOne()).envelope.from);
    assert.equal(seen.size, n);
  });
});
