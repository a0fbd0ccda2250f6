// smtp-out: remote delivery through a route to a loopback SMTP sink - exact envelope and bytes,
// connection reuse, retries after 4xx, DSN after 5xx, no bounce to <>, SMTPUTF8 rule.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import { simpleParser } from 'mailparser';

import { waitFor } from '../helpers/tmp.js';
import { testClient } from '../helpers/config.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

describe('smtp-out: remote delivery via a route', () => {
  let f: Fancy;
  let sink: Sink;
  let plain: Sink;
  before(async () => {
    sink = await startSink();
    plain = await startSink({ hideSMTPUTF8: true, hideSTARTTLS: true });
    f = await startFancy({ smtp_out: { routes: { 'remote.test': `127.0.0.1:${sink.port}`, 'old.test': `127.0.0.1:${plain.port}` } } });
  });
  after(async () => {
    await f.stop();
    await sink.close();
    await plain.close();
  });

  // The sinks are shared: every test starts from their defaults, whatever the one before did.
  beforeEach(() => {
    sink.reset();
    plain.reset();
  });

  test('envelope and bytes arrive exactly; two recipients of one domain share one connection', async () => {
    const before = sink.connections;
    const msg = message('remote one', 'Line one\r\n.leading dot\r\n\r\nLast line\r\n');
    const qid = await f.inject('alice@example.test', ['x@remote.test', 'y@remote.test'], msg);
    await waitFor(() => sink.messages.filter((m) => m.data.includes('remote one')).flatMap((m) => m.to).length === 2);
    const got = sink.messages.filter((m) => m.data.includes('remote one'));
    assert.deepEqual(got.flatMap((m) => m.to).sort(), ['x@remote.test', 'y@remote.test']);
    for (const m of got) {
      assert.equal(m.from, 'alice@example.test');
      assert.ok(m.data.equals(msg), `bytes differ:\n${m.data.toString()}`);
    }
    assert.equal(sink.connections - before, 1, 'one connection for both recipients');
    const sent = await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid && l.rcpt === 'y@remote.test');
    assert.match(String(sent.response), /^250/);
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid && l.rcpt === 'x@remote.test');
  });

  test('4xx twice, then 250: delivered after two deferrals, exactly once', async () => {
    let calls = 0;
    sink.onData = () => (++calls <= 2 ? [451, '4.3.0 try again later'] : null);
    const qid = await f.inject('alice@example.test', ['retry@remote.test'], message('retry me'));
    await waitFor(() => sink.messages.some((m) => m.data.includes('retry me')), 30_000);
    const deferrals = f.logs.filter((l) => l.event === 'smtp-out.deferred' && l.qid === qid);
    assert.equal(deferrals.length, 2);
    assert.match(String(deferrals[0]!.reason), /451 4\.3\.0 try again later/);
    assert.ok(deferrals[0]!.next, 'the next attempt time is logged');
    assert.equal(calls, 3);
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid);
    await f.settled();
    assert.equal(sink.messages.filter((m) => m.data.includes('retry me')).length, 1);
  });

  test('550: the sender gets a DSN in its Maildir with the remote answer and Status 5.1.1', async () => {
    sink.onRcpt = (a) => (a === 'gone@remote.test' ? [550, '5.1.1 <gone@remote.test>: user unknown'] : null);
    const qid = await f.inject('bob@example.test', ['gone@remote.test'], message('to gone'));
    const dsn = await waitFor(() => f.maildir('bob@example.test').find((m) => m.includes('to gone')), 30_000);
    const parsed = await simpleParser(dsn);
    assert.equal(parsed.subject, 'Undelivered Mail Returned to Sender');
    assert.match(dsn.toString(), /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    const report = parsed.text ?? '';
    assert.match(report, /Final-Recipient: rfc822; gone@remote\.test/);
    assert.match(report, /Status: 5\.1\.1/);
    assert.match(report, /Remote-MTA: dns; 127\.0\.0\.1/);
    assert.match(report, /Diagnostic-Code: smtp; 550 5\.1\.1 <gone@remote\.test>: user unknown/);
    assert.match(parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers')!.content.toString(), /Subject: to gone/);
    await f.waitLog((l) => l.event === 'smtp-out.bounced' && l.qid === qid && l.notify === 'bob@example.test');
  });

  test('550 for a message from <>: no bounce at all', async () => {
    sink.onRcpt = () => [550, '5.1.1 nobody here'];
    const count = (): number => USERS_ALL.reduce((n, u) => n + f.maildir(u).length, 0);
    const before = count();
    const qid = await f.inject('', ['nobody@remote.test'], message('null sender'));
    const line = await f.waitLog((l) => l.event === 'smtp-out.bounced' && l.qid === qid, 30_000);
    assert.equal(line.notify, null);
    await f.settled();
    assert.equal(count(), before, 'no DSN delivered anywhere');
  });

  test('a UTF-8 address to a server without SMTPUTF8 bounces with 5.6.7', async () => {
    const qid = await f.inject('alice@example.test', ['jörg@old.test'], message('utf8 rcpt'));
    const line = await f.waitLog((l) => l.event === 'smtp-out.bounced' && l.qid === qid, 30_000);
    assert.equal(line.status, '5.6.7');
    assert.equal(plain.messages.length, 0);
    await waitFor(() => f.maildir('alice@example.test').find((m) => m.includes('utf8 rcpt') && m.includes('Status: 5.6.7')), 30_000);
  });

  test('send refuses a slot outside the queue spool, and bad addresses', async () => {
    const c = testClient(f.config, f.config.ipc.smtp_out);
    try {
      const outside = await c.request('send', ['alice@example.test', 'x@remote.test', '/etc/passwd']);
      assert.equal(outside.ok, false);
      assert.match(outside.params[0] ?? '', /not a queue file/);
      const sneaky = await c.request('send', ['alice@example.test', 'x@remote.test', `${f.dir}/queue/../users`]);
      assert.equal(sneaky.ok, false);
      const noDomain = await c.request('send', ['alice@example.test', 'nodomain', `${f.dir}/queue/incoming/msg/X`]);
      assert.equal(noDomain.ok, false);
      assert.equal((await c.request('send', ['a', 'b'])).ok, false);
    } finally {
      c.close();
    }
  });

  test('an unreachable destination is deferred with the reason (shown by queue listings)', async () => {
    const closed = await startSink();
    const port = closed.port;
    await closed.close();
    await f.stop();
    f = await startFancy({ smtp_out: { routes: { 'down.test': `127.0.0.1:${port}` }, first_retry_s: 30, max_backoff_s: 60 } });
    const qid = await f.inject('alice@example.test', ['a@down.test'], message('down'));
    const line = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === qid, 30_000);
    assert.match(String(line.reason), /ECONNREFUSED|connect/i);
    assert.equal(line.seconds, 30);
  });
});

const USERS_ALL = ['alice@example.test', 'bob@example.test', 'postmaster@example.test'];
