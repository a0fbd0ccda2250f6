// Issue 12, SMTP rules: per-line deadline and DATA minimum rate (slow-loris), every accepted
// RCPT counts against max_recipients, and the pipelining synchronization check (Postfix's
// smtpd_forbid_unauth_pipelining). Timeouts are small here so each test runs in seconds.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { toolSkip } from '../helpers/tools.js';
import { type Harness, RawSmtp, greet, startHarness } from '../smtpd/harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** trickle - write TEXT one byte every STEP ms until it is all out or the socket closed. */
async function trickle(c: RawSmtp, text: string, stepMs: number): Promise<void> {
  for (const ch of text) {
    if (c.closed) return;
    c.write(ch);
    await sleep(stepMs);
  }
}

describe('smtpd slow-loris deadlines', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ smtpd: { command_timeout_s: 1, data_timeout_s: 1, min_data_rate: 1000 } });
  });
  after(async () => h.close());

  test('a command line trickled one byte at a time gets 421 4.4.2 at the deadline', async () => {
    const c = await RawSmtp.connect(h.port('smtp'));
    assert.equal((await c.reply()).code, 220);
    const t0 = Date.now();
    // 40 bytes at 100 ms each would take 4 s; every byte resets an idle timer, not a deadline.
    void trickle(c, `EHLO ${'slow'.repeat(8)}.example\r\n`, 100);
    const r = await c.reply(5000);
    const took = Date.now() - t0;
    assert.match(r.lines[0]!, /^421 4\.4\.2 /);
    assert.ok(took >= 900 && took < 2500, `cut after ${took} ms (command_timeout_s = 1)`);
    assert.ok(await c.waitClosed(3000), 'connection closed');
  });

  test('complete commands well within the deadline are served as usual', async () => {
    const { c, ehlo } = await greet(h.port('smtp'));
    assert.equal(ehlo.code, 250);
    for (let i = 0; i < 3; i++) {
      await sleep(400);
      assert.equal((await c.cmd('NOOP')).code, 250);
    }
    c.close();
  });

  test('DATA below min_data_rate gets 421 4.4.2; a large message at speed is not cut', async () => {
    const { c } = await greet(h.port('smtp'));
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const t0 = Date.now();
    // 20 bytes every 100 ms = 200 B/s, a fifth of min_data_rate: due at 1 s + bytes/1000 s.
    const slow = (async () => {
      for (let i = 0; i < 100 && !c.closed; i++) {
        c.write('x'.repeat(18) + '\r\n');
        await sleep(100);
      }
    })();
    const r = await c.reply(6000);
    const took = Date.now() - t0;
    assert.match(r.lines[0]!, /^421 4\.4\.2 /);
    assert.ok(took >= 900 && took < 3000, `cut after ${took} ms`);
    assert.ok(await c.waitClosed(3000));
    await slow;

    const fast = (await greet(h.port('smtp'))).c;
    assert.equal((await fast.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await fast.cmd('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await fast.cmd('DATA')).code, 354);
    // 90 KB in 45 pieces over about 1.4 s: longer than data_timeout_s, faster than min_data_rate.
    for (let i = 0; i < 45; i++) {
      fast.write(`${'y'.repeat(1998)}\r\n`);
      await sleep(30);
    }
    assert.equal((await fast.cmd('.')).code, 250);
    fast.close();
  });
});

describe('smtpd recipient limit and pipelining synchronization', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ smtpd: { max_recipients: 3, greet_pause_ms: 300 } });
  });
  after(async () => h.close());

  test('every accepted RCPT counts, the same address repeated too: the 4th gets 452 4.5.3', async () => {
    const { c } = await greet(h.port('smtp'));
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    for (let i = 0; i < 3; i++) assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
    assert.match((await c.cmd('RCPT TO:<alice@example.test>')).lines[0]!, /^452 4\.5\.3 /);
    assert.match((await c.cmd('RCPT TO:<bob@example.test>')).lines[0]!, /^452 4\.5\.3 /);
    // A new transaction starts counting again.
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<s@example.net>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
    c.close();
  });

  test('input before the greeting: 554 5.5.0 and closed', async () => {
    const c = await RawSmtp.connect(h.port('smtp'));
    c.write('EHLO early.example\r\n');
    const r = await c.reply();
    assert.equal(r.lines[0], '554 5.5.0 Error: SMTP protocol synchronization');
    assert.ok(await c.waitClosed());
    assert.doesNotMatch(c.transcript, /^220 /m, 'no greeting to a client that did not wait');
  });

  test('message data sent before the 354 (smtpsmug pipelining): 554 5.5.0, closed, nothing queued', async () => {
    const before = h.queued.pushed.length;
    const { c } = await greet(h.port('smtp'));
    c.write('MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\nQUIT\r\n');
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.reply()).lines[0], '554 5.5.0 Error: SMTP protocol synchronization');
    assert.ok(await c.waitClosed());
    assert.doesNotMatch(c.transcript, /^354 /m);
    assert.equal(h.queued.pushed.length, before);
  });

  test('pipelining after HELO, or past EHLO / NOOP: 554 5.5.0 and closed', async () => {
    for (const [hello, rest] of [
      ['HELO old.example', 'MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.test>\r\n'],
      ['EHLO new.example', 'MAIL FROM:<s@example.net>\r\n'],
    ] as const) {
      const c = await RawSmtp.connect(h.port('smtp'));
      assert.equal((await c.reply()).code, 220);
      c.write(`${hello}\r\n${rest}`);
      assert.equal((await c.reply()).lines[0], '554 5.5.0 Error: SMTP protocol synchronization', hello);
      assert.ok(await c.waitClosed(), hello);
    }
    const { c } = await greet(h.port('smtp'));
    c.write('NOOP\r\nMAIL FROM:<s@example.net>\r\n');
    assert.equal((await c.reply()).lines[0], '554 5.5.0 Error: SMTP protocol synchronization');
    assert.ok(await c.waitClosed());
  });

  test('correct pipelining after EHLO keeps working: MAIL, RCPT, DATA together, data after 354', async () => {
    const before = h.queued.pushed.length;
    const { c } = await greet(h.port('smtp'));
    c.write('MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n');
    assert.deepEqual([(await c.reply()).code, (await c.reply()).code, (await c.reply()).code, (await c.reply()).code], [250, 250, 250, 354]);
    c.write('Subject: fine\r\n\r\nhi\r\n.\r\nRSET\r\nMAIL FROM:<t@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n');
    assert.deepEqual([(await c.reply()).code, (await c.reply()).code, (await c.reply()).code, (await c.reply()).code, (await c.reply()).code], [250, 250, 250, 250, 354]);
    c.write('Subject: two\r\n\r\nhi\r\n.\r\nQUIT\r\n');
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.reply()).code, 221);
    assert.equal(h.queued.pushed.length, before + 2);
  });

  test('swaks --pipeline delivers', { skip: toolSkip('swaks') }, async () => {
    const before = h.queued.pushed.length;
    const child = spawn('swaks', ['--server', `127.0.0.1:${h.port('smtp')}`, '--pipeline', '--to', 'alice@example.test,bob@example.test', '--from', 's@example.net'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, out);
    assert.match(out, /250 2\.0\.0 Ok: queued as/);
    assert.equal(h.queued.pushed.length, before + 1);
  });
});
