// router: local delivery end to end, unknown users bounced, null sender never bounced.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { simpleParser } from 'mailparser';

import { waitFor } from '../helpers/tmp.js';
import { type Fancy, message, startFancy } from './harness.js';

describe('router: local delivery', () => {
  let f: Fancy;
  before(async () => {
    f = await startFancy();
  });
  after(async () => {
    await f.stop();
  });

  test('a message pushed to incoming lands in the Maildir with Return-Path and Delivered-To', async () => {
    const msg = message('local one', 'Body line 1\r\nBody line 2\r\n');
    const qid = await f.inject('carol@remote.test', ['alice@example.test', 'Bob@example.test'], msg);
    const [alice] = await waitFor(() => (f.maildir('alice@example.test').length === 1 ? f.maildir('alice@example.test') : null));
    const [bob] = await waitFor(() => (f.maildir('bob@example.test').length === 1 ? f.maildir('bob@example.test') : null));
    for (const [got, rcpt] of [
      [alice!, 'alice@example.test'],
      [bob!, 'Bob@example.test'],
    ] as const) {
      const text = got.toString('utf8');
      assert.match(text, /^(Return-Path|Delivered-To): /);
      assert.match(text, /^Return-Path: <carol@remote\.test>\r$/m);
      assert.match(text, new RegExp(`^Delivered-To: ${rcpt}\\r$`, 'mi'));
      assert.ok(got.subarray(got.length - msg.length).equals(msg), 'message bytes follow the added headers unchanged');
    }
    await f.waitLog((l) => l.event === 'router.delivered' && l.qid === qid && l.rcpt === 'Bob@example.test');
    await f.waitLog((l) => l.event === 'queued.done' && l.qid === qid);
  });

  test('the same mailbox named twice in one message gets one copy', async () => {
    const qid = await f.inject('carol@remote.test', ['bob@example.test', 'BOB@example.test'], message('twice'));
    await waitFor(() => f.maildir('bob@example.test').some((m) => m.includes('Subject: twice')));
    // Both recipients handled (done), and nothing else queued: now count the copies.
    await f.waitLog((l) => l.event === 'queued.done' && l.qid === qid);
    await f.settled();
    assert.equal(f.maildir('bob@example.test').filter((m) => m.includes('Subject: twice')).length, 1);
    assert.ok(f.logs.some((l) => l.event === 'queued.done' && l.qid === qid), 'both recipients handed over');
    assert.ok(!f.logs.some((l) => l.event === 'router.bounced' && l.qid === qid), 'BOB@ resolves to bob@, no bounce');
  });

  test('an unknown user of a local domain bounces to the sender with Status 5.1.1', async () => {
    const qid = await f.inject('alice@example.test', ['nobody@example.test', 'bob@example.test'], message('to nobody'));
    const dsn = await waitFor(() => f.maildir('alice@example.test').find((m) => m.includes('Undelivered Mail')));
    const parsed = await simpleParser(dsn);
    assert.equal(parsed.from?.value[0]?.address, 'MAILER-DAEMON@mx.fancymail.test');
    assert.match(dsn.toString(), /^Return-Path: <>\r$/m);
    assert.match(String(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    // mailparser shows a message/delivery-status part inline, in the text
    assert.match(dsn.toString(), /^Content-Type: message\/delivery-status\r$/m);
    const report = parsed.text ?? '';
    assert.match(report, /Final-Recipient: rfc822; nobody@example\.test/);
    assert.match(report, /Action: failed/);
    assert.match(report, /Status: 5\.1\.1/);
    const headers = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
    assert.match(headers!.content.toString(), /Subject: to nobody/);
    // bob still got his copy
    await waitFor(() => f.maildir('bob@example.test').some((m) => m.includes('Subject: to nobody')));
    await f.waitLog((l) => l.event === 'router.bounced' && l.qid === qid && l.notify === 'alice@example.test');
  });

  test('a message from the null sender is never bounced', async () => {
    const before = f.maildir('alice@example.test').length + f.maildir('postmaster@example.test').length;
    const qid = await f.inject('', ['ghost@example.test'], message('from <>'));
    const line = await f.waitLog((l) => l.event === 'router.bounced' && l.qid === qid);
    assert.equal(line.notify, null);
    assert.equal(line.dsn, null);
    // A DSN would be queued before the message is done; once done and settled, count.
    await f.waitLog((l) => l.event === 'queued.done' && l.qid === qid);
    await f.settled();
    assert.equal(f.maildir('alice@example.test').length + f.maildir('postmaster@example.test').length, before);
    assert.ok(!f.logs.some((l) => l.event === 'router.delivered' && String(l.rcpt) === ''), 'nothing delivered to <>');
  });

  test('a bounce that fails itself goes to postmaster (double bounce), and no further', async () => {
    const qid = await f.inject('', ['ghost2@example.test'], message('a bounce'), { dsn: 'bounce' });
    const line = await f.waitLog((l) => l.event === 'router.bounced' && l.qid === qid);
    assert.equal(line.notify, 'postmaster@example.test');
    await waitFor(() => f.maildir('postmaster@example.test').some((m) => m.includes('ghost2@example.test')));
  });

  test('mailboxd down: deferred, then delivered once it is back', async () => {
    const mbox = f.system.servers.find((s) => s.name === 'mailboxd')!;
    await mbox.close();
    const qid = await f.inject('carol@remote.test', ['alice@example.test'], message('while down'));
    await f.waitLog((l) => l.event === 'router.deferred' && l.qid === qid);
    const { start } = await import('../../src/mailboxd/index.js');
    const again = await start({ config: f.config, logger: (await import('../../src/shared/log.js')).silentLogger() });
    f.system.servers.splice(f.system.servers.indexOf(mbox), 1, again);
    await waitFor(() => f.maildir('alice@example.test').some((m) => m.includes('Subject: while down')), 20_000);
  });
});
