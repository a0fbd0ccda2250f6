// smtpd against fake authd/queued, spoken to byte by byte: capabilities, the queue file,
// every refusal of issue 6, limits and graceful stop.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type Harness, RawSmtp, dotStuff, greet, plainToken, readQueued, sendMessage, startHarness } from './harness.js';
import { waitFor } from '../helpers/tmp.js';

const MSG = Buffer.from('From: a@example.net\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n');

async function authed(h: Harness, role: 'submission' | 'smtp' = 'submission', user = 'alice@example.test', pass = 'secret'): Promise<RawSmtp> {
  const { c } = await greet(h.port(role));
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  await c.upgrade();
  assert.equal((await c.cmd('EHLO client.example.net')).code, 250);
  const r = await c.cmd(`AUTH PLAIN ${plainToken(user, pass)}`);
  assert.equal(r.code, 235, r.text);
  return c;
}

describe('smtpd with fake authd and queued', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ smtpd: { max_recipients: 3, max_message_size: 100_000, max_line_length: 2000 } });
  });
  after(async () => {
    await h.close();
  });

  test('EHLO on the MX port: extensions, STARTTLS, no AUTH before TLS, no CHUNKING', async () => {
    const { c, ehlo } = await greet(h.port('smtp'));
    const ext = ehlo.lines.map((l) => l.slice(4));
    for (const e of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'STARTTLS', 'SIZE 100000']) assert.ok(ext.includes(e), `${e} in ${ext.join(',')}`);
    assert.ok(!ext.some((e) => e.startsWith('AUTH')), 'no AUTH before TLS');
    assert.ok(!ext.includes('CHUNKING'), 'smtp-server has no BDAT');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    const after = await c.cmd('EHLO client.example.net');
    const ext2 = after.lines.map((l) => l.slice(4));
    assert.ok(ext2.includes('AUTH PLAIN LOGIN'), ext2.join(','));
    assert.ok(!ext2.includes('STARTTLS'));
    c.close();
  });

  test('implicit TLS port offers AUTH at once', async () => {
    const { c, ehlo } = await greet(h.port('submissions'), { secure: true });
    assert.ok(ehlo.lines.some((l) => l.slice(4) === 'AUTH PLAIN LOGIN'), ehlo.text);
    c.close();
  });

  test('a message to a local user is queued: envelope, Received, body byte-exact, 250 with qid', async () => {
    const { c } = await greet(h.port('smtp'), { helo: 'client.example.net' });
    const body = Buffer.concat([
      Buffer.from('Subject: test\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nx\r\n8bit: caf\xc3\xa9 \xff\xfe\r\n', 'latin1'),
      Buffer.from('y'.repeat(998) + '\r\n'),
    ]);
    const r = await sendMessage(c, 'sender@example.net', ['alice@example.test', 'sales@example.test'], dotStuff(body));
    assert.equal(r.code, 250, r.text);
    const m = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(r.lines[0]!);
    assert.ok(m, r.text);
    const qid = m[1]!;
    const file = h.queued.pushed.at(-1)!;
    assert.equal(path.basename(file), qid);
    const q = readQueued(file);
    assert.equal(q.envelope.qid, qid);
    assert.equal(q.envelope.from, 'sender@example.net');
    assert.deepEqual(q.envelope.rcpt, ['alice@example.test', 'sales@example.test']);
    assert.equal(q.envelope.client, '127.0.0.1');
    assert.equal(q.envelope.helo, 'client.example.net');
    assert.equal(q.envelope.auth, '');
    assert.ok(!Number.isNaN(Date.parse(q.envelope.time)));
    assert.match(q.received, new RegExp(`^Received: from client\\.example\\.net \\(unknown \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.fancymail\\.test with ESMTP id ${qid}; \\w{3}, \\d\\d \\w{3} \\d{4} [\\d:]{8} \\+0000\\r\\n$`));
    assert.ok(q.body.equals(body), 'body byte-exact');
    c.close();
  });

  test('one recipient is named in Received; authenticated TLS session is ESMTPSA', async () => {
    const c = await authed(h);
    const r = await sendMessage(c, 'alice@example.test', ['someone@remote.example'], MSG);
    assert.equal(r.code, 250, r.text);
    const q = readQueued(h.queued.pushed.at(-1)!);
    assert.match(q.received, /with ESMTPSA id \S+\r\n\tfor <someone@remote\.example>; /);
    assert.equal(q.envelope.auth, 'alice@example.test');
    c.close();
  });

  test('relay denied for a non-local recipient without AUTH', async () => {
    const { c } = await greet(h.port('smtp'));
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
    const r = await c.cmd('RCPT TO:<victim@elsewhere.example>');
    assert.equal(r.lines[0], '554 5.7.1 <victim@elsewhere.example>: Relay access denied');
    c.close();
  });

  test('unknown local user', async () => {
    const { c } = await greet(h.port('smtp'));
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
    const r = await c.cmd('RCPT TO:<nobody@example.test>');
    assert.equal(r.lines[0], '550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown');
    c.close();
  });

  test('size: SIZE= too big at MAIL, and an oversized message after DATA; nothing queued', async () => {
    const before = h.queued.pushed.length;
    const { c } = await greet(h.port('smtp'));
    const r1 = await c.cmd('MAIL FROM:<x@example.net> SIZE=200000');
    assert.match(r1.lines[0]!, /^552 5\.3\.4 /);
    const big = Buffer.from(('z'.repeat(998) + '\r\n').repeat(150));
    const r2 = await sendMessage(c, 'x@example.net', ['alice@example.test'], big);
    assert.match(r2.lines[0]!, /^552 5\.3\.4 /);
    assert.equal((await c.cmd('NOOP')).code, 250, 'session goes on');
    assert.equal(h.queued.pushed.length, before);
    c.close();
  });

  test('too many recipients', async () => {
    const { c } = await greet(h.port('smtp'));
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
    for (const to of ['alice@example.test', 'bob@example.test', 'sales@example.test']) assert.equal((await c.cmd(`RCPT TO:<${to}>`)).code, 250);
    const r = await c.cmd('RCPT TO:<postmaster>');
    assert.equal(r.lines[0], '452 4.5.3 Error: too many recipients');
    c.close();
  });

  test('AUTH without TLS is refused (and not advertised)', async () => {
    const calls = h.authCalls.length;
    const { c } = await greet(h.port('submission'));
    const r = await c.cmd(`AUTH PLAIN ${plainToken('alice@example.test', 'secret')}`);
    assert.equal(r.lines[0], '503 5.5.1 Error: authentication not enabled');
    assert.equal(h.authCalls.length, calls, 'the password never reached authd');
    c.close();
  });

  test('RCPT before MAIL, DATA before RCPT', async () => {
    const { c } = await greet(h.port('smtp'));
    assert.match((await c.cmd('RCPT TO:<alice@example.test>')).lines[0]!, /^503 5\.5\.1 /);
    assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
    assert.match((await c.cmd('DATA')).lines[0]!, /^503 5\.5\.1 /);
    c.close();
  });

  test('pipelined commands are answered in order', async () => {
    const { c } = await greet(h.port('smtp'));
    c.write(
      'MAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<far@away.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n',
    );
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await c.reply()).code);
    assert.deepEqual(codes, [250, 250, 550, 554, 250, 354]);
    c.write('Subject: p\r\n\r\nx\r\n.\r\nRSET\r\nNOOP\r\n');
    const tail = [(await c.reply()).code, (await c.reply()).code, (await c.reply()).code];
    assert.deepEqual(tail, [250, 250, 250]);
    assert.deepEqual(readQueued(h.queued.pushed.at(-1)!).envelope.rcpt, ['alice@example.test', 'bob@example.test']);
    c.close();
  });

  test('submission port: MAIL needs AUTH; failed AUTH is delayed; the client IP reaches authd', async () => {
    const { c } = await greet(h.port('submission'));
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    await c.cmd('EHLO client.example.net');
    assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).lines[0], '530 5.7.0 Authentication required');
    const t0 = Date.now();
    const bad = await c.cmd(`AUTH PLAIN ${plainToken('alice@example.test', 'wrong')}`);
    assert.equal(bad.lines[0], '535 5.7.8 Error: authentication failed: authentication failure');
    assert.ok(Date.now() - t0 >= 45, 'answered after auth_failure_delay_ms');
    assert.deepEqual(h.authCalls.at(-1), ['alice@example.test', 'wrong', '127.0.0.1']);
    // AUTH LOGIN works too
    assert.equal((await c.cmd('AUTH LOGIN')).code, 334);
    assert.equal((await c.cmd(Buffer.from('bob@example.test').toString('base64'))).code, 334);
    assert.equal((await c.cmd(Buffer.from('hunter2').toString('base64'))).code, 235);
    assert.equal((await sendMessage(c, 'bob@example.test', ['far@away.example'], MSG)).code, 250);
    c.close();
  });

  test('sender ownership: own address and alias ok, others 553 5.7.1', async () => {
    const c = await authed(h);
    assert.equal((await c.cmd('MAIL FROM:<Alice@Example.test>')).code, 250);
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<sales@example.test>')).code, 250);
    assert.equal((await c.cmd('RSET')).code, 250);
    const r = await c.cmd('MAIL FROM:<bob@example.test>');
    assert.equal(r.lines[0], '553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test');
    c.close();
  });

  test('STARTTLS: plaintext pipelined behind it in the same packet is discarded', async () => {
    const before = h.queued.pushed.length;
    const { c } = await greet(h.port('smtp'));
    c.write('STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\ninjected\r\n.\r\n');
    assert.equal((await c.reply()).code, 220);
    await c.upgrade();
    // EHLO ends a group (RFC 2920): its reply comes before anything else is sent.
    const ehlo = await c.cmd('EHLO client.example.net');
    assert.equal(ehlo.code, 250);
    c.write('RCPT TO:<alice@example.test>\r\nQUIT\r\n');
    // Had MAIL FROM been injected and survived, RCPT would be 250; it must be 503.
    assert.match((await c.reply()).lines[0]!, /^503 /);
    assert.equal((await c.reply()).code, 221);
    assert.ok(await c.waitClosed());
    assert.ok(!/\r\n250 2\.0\.0 OK\r\n/i.test(c.transcript), 'no reply to the injected NOOP');
    assert.equal(h.queued.pushed.length, before);
  });

  test('no header or envelope injection through HELO, MAIL FROM or RCPT', async () => {
    const { c, ehlo } = await greet(h.port('smtp'), { helo: 'evil(x);by_fake[1.2.3.4]' });
    assert.equal(ehlo.code, 250);
    // Control characters in commands are refused outright by the parser.
    assert.match((await c.cmd('MAIL FROM:<a\x0bb@example.net>')).lines[0]!, /^501 /);
    const from = 'we%0Aird;x@example.net';
    const r = await sendMessage(c, from, ['alice@example.test'], MSG);
    assert.equal(r.code, 250, r.text);
    const q = readQueued(h.queued.pushed.at(-1)!);
    assert.equal(q.envelope.from, from, 'percent sign survives the percent-encoding round trip');
    assert.equal(q.envelope.helo, 'evil(x);by_fake[1.2.3.4]');
    assert.ok(q.received.startsWith('Received: from evil?x??by_fake[1.2.3.4] (unknown [127.0.0.1])\r\n'), q.received);
    assert.equal(q.received.split('\r\n').filter((l) => l && !l.startsWith('\t')).length, 1, 'one header line');
    assert.ok(q.body.equals(MSG));
    c.close();
  });

  for (const [name, variant] of [
    ['<LF>.<LF>', '\n.\n'],
    ['<CR><LF>.<LF>', '\r\n.\n'],
    ['<LF>.<CR><LF>', '\n.\r\n'],
  ] as const) {
    test(`SMTP smuggling with ${name} followed by a second transaction queues ONE message`, async () => {
      const before = h.queued.pushed.length;
      const { c } = await greet(h.port('smtp'));
      for (const cmd of ['MAIL FROM:<a@example.net>', 'RCPT TO:<alice@example.test>', 'DATA']) await c.cmd(cmd);
      c.write(`Subject: first\r\n\r\nbody${variant}MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n`);
      const r = await c.reply();
      assert.equal(r.code, 250, r.text);
      assert.equal((await c.cmd('QUIT')).code, 221);
      assert.equal(h.queued.pushed.length, before + 1, 'exactly one message');
      const q = readQueued(h.queued.pushed.at(-1)!);
      assert.deepEqual(q.envelope.rcpt, ['alice@example.test']);
      const text = q.body.toString('latin1');
      assert.ok(text.includes('Subject: smuggled'), 'the smuggled part is content of the first message');
      assert.ok(!/(^|[^\r])\n/.test(text), 'bare LF normalised to CRLF');
    });
  }

  test('a message line over max_line_length is refused', async () => {
    const { c } = await greet(h.port('smtp'));
    const r = await sendMessage(c, 'x@example.net', ['alice@example.test'], Buffer.from('Subject: l\r\n\r\n' + 'q'.repeat(2100) + '\r\n'));
    assert.match(r.lines[0]!, /^552 5\.3\.4 .*line/);
    c.close();
  });

  test('queued refusing push or slot, or down: 451 4.3.0 and no file left behind', async () => {
    const { c } = await greet(h.port('smtp'));
    h.queued.failPush = true;
    const slotsBefore = h.queued.slots.length;
    let r = await sendMessage(c, 'x@example.net', ['alice@example.test'], MSG);
    assert.equal(r.lines[0], '451 4.3.0 Error: queue file write error');
    h.queued.failPush = false;
    const last = h.queued.slots.at(-1)!;
    assert.equal(h.queued.slots.length, slotsBefore + 1);
    assert.ok(!existsSync(last), 'partial file removed');
    h.queued.failSlot = true;
    r = await sendMessage(c, 'x@example.net', ['alice@example.test'], MSG);
    assert.equal(r.lines[0], '451 4.3.0 Error: queue file write error');
    h.queued.failSlot = false;
    assert.equal((await sendMessage(c, 'x@example.net', ['alice@example.test'], MSG)).code, 250, 'recovers');
    c.close();
  });
});

describe('smtpd limits and policies', () => {
  test('bare_newline = reject: 550 5.5.2, nothing queued', async () => {
    const h = await startHarness({ smtpd: { bare_newline: 'reject' } });
    try {
      const { c } = await greet(h.port('smtp'));
      const r = await sendMessage(c, 'x@example.net', ['alice@example.test'], Buffer.from('Subject: x\r\n\r\nline\nother\r\n'));
      assert.equal(r.lines[0], '550 5.5.2 Error: bare <LF> received');
      assert.equal(h.queued.pushed.length, 0);
      assert.equal((await sendMessage(c, 'x@example.net', ['alice@example.test'], MSG)).code, 250, 'clean message still accepted');
      c.close();
    } finally {
      await h.close();
    }
  });

  test('per-IP connection limit, max errors, idle timeout', async () => {
    const h = await startHarness({ smtpd: { max_connections_per_ip: 2, connection_limit_exempt: [], max_errors: 3, command_timeout_s: 1 } });
    try {
      const a = await greet(h.port('smtp'));
      const b = await greet(h.port('smtp'));
      const third = await RawSmtp.connect(h.port('smtp'));
      assert.match((await third.reply()).lines[0]!, /^421 4\.7\.0 Error: too many connections from 127\.0\.0\.1/);
      assert.ok(await third.waitClosed());
      a.c.close();
      await waitFor(async () => {
        const d = await RawSmtp.connect(h.port('smtp'));
        const ok = (await d.reply()).code === 220;
        d.close();
        return ok;
      });
      // errors: the third error reply is followed by 421
      const e = b.c;
      assert.equal((await e.cmd('RCPT TO:<alice@example.test>')).code, 503);
      assert.equal((await e.cmd('BOGUS')).code, 500);
      e.write('DATA\r\n');
      assert.equal((await e.reply()).code, 503);
      assert.match((await e.reply()).lines[0]!, /^421 4\.7\.0 Error: too many errors/);
      assert.ok(await e.waitClosed());
      // idle: silence beyond command_timeout_s gets 421
      const { c: idle } = await greet(h.port('smtp'));
      const r = await idle.reply(15_000);
      assert.equal(r.code, 421);
      assert.ok(await idle.waitClosed());
    } finally {
      await h.close();
    }
  });

  test('graceful close: a DATA in progress finishes with 250, idle sessions get 421, new ones are refused', async () => {
    const h = await startHarness({ smtpd: { close_grace_s: 10 } });
    let closed = false;
    try {
      const { c: idle } = await greet(h.port('smtp'));
      const { c: busy } = await greet(h.port('smtp'));
      for (const cmd of ['MAIL FROM:<x@example.net>', 'RCPT TO:<alice@example.test>', 'DATA']) await busy.cmd(cmd);
      busy.write('Subject: slow\r\n\r\nfirst half\r\n');
      const port = h.port('smtp');
      const closing = h.smtpd.close().then(() => (closed = true));
      assert.equal((await idle.reply()).code, 421);
      assert.equal(closed, false, 'waits for the transaction');
      busy.write('second half\r\n.\r\n');
      const r = await busy.reply();
      assert.equal(r.code, 250, r.text);
      busy.write('QUIT\r\n');
      await closing;
      assert.equal(h.queued.pushed.length, 1);
      await assert.rejects(RawSmtp.connect(port));
    } finally {
      if (!closed) await h.smtpd.close();
      await h.close().catch(() => {});
    }
  });

  test('queued unreachable: 451, nothing half-written remains', async () => {
    const h = await startHarness();
    try {
      await h.stopQueued();
      const { c } = await greet(h.port('smtp'));
      const r = await sendMessage(c, 'x@example.net', ['alice@example.test'], MSG);
      assert.equal(r.lines[0], '451 4.3.0 Error: queue file write error');
      assert.deepEqual(readdirSync(path.join(h.dir, 'queue', 'incoming')), []);
      c.close();
    } finally {
      await h.close();
    }
  });

  test('a disabled listener (-1) is not started; plaintext AUTH on loopback when allowed', async () => {
    const h = await startHarness({ smtpd: { submissions_port: -1, allow_plaintext_auth_loopback: true } });
    try {
      assert.equal(h.smtpd.addresses.submissions, undefined);
      const { c, ehlo } = await greet(h.port('submission'));
      assert.ok(ehlo.lines.some((l) => l.slice(4) === 'AUTH PLAIN LOGIN'));
      assert.equal((await c.cmd(`AUTH PLAIN ${plainToken('alice@example.test', 'secret')}`)).code, 235);
      c.close();
    } finally {
      await h.close();
    }
  });
});
