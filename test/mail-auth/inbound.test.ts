// Inbound checks through smtpd's MX port against a real DNS server on loopback (zone.ts):
// SPF, DKIM, DMARC and ARC as the exact Authentication-Results header recorded for the
// message (compared unfolded, every line within 78 characters), the 550 for DMARC p=reject,
// the quarantine header, forged results removed, submission not checked.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { prependOf } from '../../src/mail/auth/prepend.js';
import { registry } from '../../src/shared/metrics.js';
import { type DnsServer, startDnsServer } from '../helpers/dns-server.js';
import { type Harness, type Reply, dotStuff, greet, plainToken, readQueued, sendMessage, startHarness } from '../smtpd/harness.js';
import { forwarded, inboundZone, mail, signed } from './zone.js';

const ID = 'mx.fancymail.test';
const HELO_PASS = `spf=pass (${ID}: domain of postmaster@helo.test designates 127.0.0.1 as permitted sender) smtp.helo=helo.test`;
const NOT_SIGNED = 'dkim=none (message not signed)';
const spfNone = (d: string, from = `a@${d}`, helo = 'helo.test'): string => `spf=none (${ID}: ${d} does not designate permitted sender hosts) smtp.mailfrom=${from} smtp.helo=${helo}`;
const ar = (...rows: string[]): string => `Authentication-Results: ${ID}; ${rows.join('; ')}`;

/** headerB - header.b= as mailauth writes it: the signature's first 8 characters, quoted if they hold a "/". */
function headerB(msg: Buffer): string {
  const b = /b=([A-Za-z0-9+/]{8})/.exec(msg.toString().replace(/\r\n\s+/g, ''))![1]!;
  return b.includes('/') ? `"${b}"` : b;
}

/** unfold - a header block as one line per field, folding undone. */
function unfold(h: string): string[] {
  return h
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n')
    .filter((l) => l !== '');
}

describe('mail-auth: inbound checks on the MX port', () => {
  let dns: DnsServer;
  let h: Harness;
  before(async () => {
    dns = await startDnsServer(inboundZone());
    h = await startHarness({ mail_auth: { check: true }, dns: { servers: [dns.address], timeout_ms: 1000, tries: 1 } });
  });
  after(async () => {
    await h?.close();
    await dns?.close();
  });

  async function deliver(from: string, msg: Buffer, helo = 'helo.test'): Promise<{ reply: Reply; headers: string[]; stored: string }> {
    const { c } = await greet(h.port('smtp'), { helo });
    const n = h.queued.pushed.length;
    const reply = await sendMessage(c, from, ['alice@example.test'], dotStuff(msg));
    await c.cmd('QUIT').catch(() => undefined);
    c.close();
    if (reply.code !== 250) return { reply, headers: [], stored: '' };
    const q = readQueued(h.queued.pushed[n]!);
    const raw = prependOf(q.envelope).toString();
    assert.ok(raw.endsWith('\r\n'));
    for (const line of raw.split('\r\n')) assert.ok(line.length <= 78, `line over 78 characters: ${line}`);
    return { reply, headers: unfold(raw), stored: q.body.toString() };
  }

  async function expectHeader(from: string, msg: Buffer, expected: string[], helo = 'helo.test'): Promise<string> {
    const r = await deliver(from, msg, helo);
    assert.equal(r.reply.code, 250, r.reply.text);
    assert.deepEqual(r.headers, expected);
    return r.stored;
  }

  test('SPF pass, with HELO checked too', async () => {
    await expectHeader('a@spf-pass.test', mail('a@spf-pass.test', 'spf pass'), [
      ar(NOT_SIGNED, `spf=pass (${ID}: domain of a@spf-pass.test designates 127.0.0.1 as permitted sender) smtp.mailfrom=a@spf-pass.test smtp.helo=helo.test`, HELO_PASS, 'dmarc=none header.from=spf-pass.test'),
    ]);
  });

  test('SPF fail (delivered: spf_reject is off, DMARC decides)', async () => {
    await expectHeader('a@spf-fail.test', mail('a@spf-fail.test', 'spf fail'), [
      ar(NOT_SIGNED, `spf=fail (${ID}: domain of a@spf-fail.test does not designate 127.0.0.1 as permitted sender) smtp.mailfrom=a@spf-fail.test smtp.helo=helo.test`, HELO_PASS, 'dmarc=none header.from=spf-fail.test'),
    ]);
  });

  test('SPF softfail, and HELO none', async () => {
    await expectHeader(
      'a@spf-soft.test',
      mail('a@spf-soft.test', 'spf soft'),
      [
        ar(
          NOT_SIGNED,
          `spf=softfail (${ID}: domain of transitioning a@spf-soft.test does not designate 127.0.0.1 as permitted sender) smtp.mailfrom=a@spf-soft.test smtp.helo=unknown.test`,
          `spf=none (${ID}: unknown.test does not designate permitted sender hosts) smtp.helo=unknown.test`,
          'dmarc=none header.from=spf-soft.test',
        ),
      ],
      'unknown.test',
    );
  });

  test('SPF none', async () => {
    await expectHeader('a@spf-none.test', mail('a@spf-none.test', 'spf none'), [ar(NOT_SIGNED, spfNone('spf-none.test'), HELO_PASS, 'dmarc=none header.from=spf-none.test')]);
  });

  test('SPF temperror (the DNS server fails), mail accepted', async () => {
    await expectHeader('a@spf-temp.test', mail('a@spf-temp.test', 'spf temp'), [
      ar(NOT_SIGNED, `spf=temperror (${ID}: error in processing during lookup of a@spf-temp.test: queryTxt ESERVFAIL spf-temp.test) smtp.mailfrom=a@spf-temp.test smtp.helo=helo.test`, HELO_PASS, 'dmarc=none header.from=spf-temp.test'),
    ]);
  });

  test('DKIM pass (and DMARC pass through DKIM alignment, SPF none)', async () => {
    const msg = await signed(mail('x@dkim.test', 'dkim pass'), 'dkim.test', 's1');
    const b = headerB(msg);
    await expectHeader('a@spf-none.test', msg, [
      ar(`dkim=pass header.i=@dkim.test header.s=s1 header.a=rsa-sha256 header.b=${b}`, spfNone('spf-none.test'), HELO_PASS, 'dmarc=pass (p=REJECT arc=none) header.from=dkim.test header.d=dkim.test'),
    ]);
  });

  test('DKIM body tampered: fail', async () => {
    const good = await signed(mail('x@list.test', 'dkim tamper'), 'dkim.test', 's1');
    const bad = Buffer.from(good.toString().replace('Hello there.', 'Hello there!'));
    const b = headerB(good);
    await expectHeader('a@spf-none.test', bad, [
      ar(`dkim=fail (body hash did not verify) header.i=@dkim.test header.s=s1 header.a=rsa-sha256 header.b=${b}`, spfNone('spf-none.test'), HELO_PASS, 'dmarc=fail (p=NONE arc=none) header.from=list.test header.d=list.test'),
    ]);
  });

  test('DKIM key missing from DNS', async () => {
    const msg = await signed(mail('x@list.test', 'dkim no key'), 'dkim.test', 'gone');
    const b = headerB(msg);
    // RFC 8601 2.7.1 neutral: signed, but the signature could not be processed (no key).
    await expectHeader('a@spf-none.test', msg, [
      ar(`dkim=neutral (no key) header.i=@dkim.test header.s=gone header.a=rsa-sha256 header.b=${b}`, spfNone('spf-none.test'), HELO_PASS, 'dmarc=fail (p=NONE arc=none) header.from=list.test header.d=list.test'),
    ]);
  });

  test('DMARC pass through SPF alignment', async () => {
    await expectHeader('bounce@align-spf.test', mail('x@align-spf.test', 'dmarc spf'), [
      ar(
        NOT_SIGNED,
        `spf=pass (${ID}: domain of bounce@align-spf.test designates 127.0.0.1 as permitted sender) smtp.mailfrom=bounce@align-spf.test smtp.helo=helo.test`,
        HELO_PASS,
        'dmarc=pass (p=REJECT arc=none) header.from=align-spf.test header.d=align-spf.test',
      ),
    ]);
  });

  test('DMARC fail with p=none: delivered, not marked', async () => {
    await expectHeader('a@spf-none.test', mail('x@pnone.test', 'dmarc none'), [ar(NOT_SIGNED, spfNone('spf-none.test'), HELO_PASS, 'dmarc=fail (p=NONE arc=none) header.from=pnone.test header.d=pnone.test')]);
  });

  test('DMARC fail with p=quarantine: delivered with the quarantine header', async () => {
    await expectHeader('a@spf-none.test', mail('x@quar.test', 'dmarc quar'), [
      ar(NOT_SIGNED, spfNone('spf-none.test'), HELO_PASS, 'dmarc=fail (p=QUARANTINE arc=none) header.from=quar.test header.d=quar.test'),
      'X-FancyMail-Quarantine: dmarc=fail policy=quarantine header.from=quar.test',
    ]);
  });

  test('DMARC fail with p=reject: 550 5.7.1 at the end of DATA, nothing queued', async () => {
    const n = h.queued.pushed.length;
    const r = await deliver('a@spf-none.test', mail('x@rej.test', 'dmarc rej'));
    assert.equal(r.reply.text, '550 5.7.1 Email rejected per DMARC policy for rej.test');
    assert.equal(h.queued.pushed.length, n);
  });

  test('forwarded through a list that ARC-sealed it: DKIM broken by the footer, ARC pass', async () => {
    const msg = await forwarded(await signed(mail('x@list.test', 'arc fwd'), 'dkim.test', 's1'));
    const r = await deliver('list@fwd.test', msg);
    assert.equal(r.reply.code, 250);
    const rows = r.headers[0]!.split('; ');
    assert.match(rows[1]!, /^dkim=fail \(body hash did not verify\) header\.i=@dkim\.test header\.s=s1 /);
    assert.ok(rows.includes('arc=pass (i=1 spf=pass dkim=pass dmarc=pass fromdomain=list.test)'), rows.join('\n'));
    assert.equal(rows.at(-1), 'dmarc=fail (p=NONE arc=pass) header.from=list.test header.d=list.test');
  });

  test('a forged Authentication-Results with our id is removed; others are kept', async () => {
    const forged =
      `Authentication-Results: ${ID}; dkim=pass header.d=bank.test\r\n` +
      'Authentication-Results: other.example;\r\n spf=pass smtp.mailfrom=x@other.example\r\n' +
      `Authentication-Results:\r\n ${ID.toUpperCase()}; spf=pass\r\n` +
      `Authentication-Results: (comment) ${ID}; dmarc=pass\r\n` +
      `Authentication-Results: ${ID}.evil.test; dmarc=pass\r\n`;
    const stored = await expectHeader('a@spf-pass.test', mail('a@spf-pass.test', 'forged', 'Body.\r\nAuthentication-Results: mx.fancymail.test; in the body stays\r\n', forged), [
      ar(NOT_SIGNED, `spf=pass (${ID}: domain of a@spf-pass.test designates 127.0.0.1 as permitted sender) smtp.mailfrom=a@spf-pass.test smtp.helo=helo.test`, HELO_PASS, 'dmarc=none header.from=spf-pass.test'),
    ]);
    assert.equal(
      stored,
      'From: <a@spf-pass.test>\r\nTo: <alice@example.test>\r\nSubject: forged\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <forged@test>\r\n' +
        'Authentication-Results: other.example;\r\n spf=pass smtp.mailfrom=x@other.example\r\n' +
        `Authentication-Results: ${ID}.evil.test; dmarc=pass\r\n` +
        '\r\nBody.\r\nAuthentication-Results: mx.fancymail.test; in the body stays\r\n',
    );
  });

  test('authenticated submission is not checked', async () => {
    const { c } = await greet(h.port('submission'));
    await c.cmd('STARTTLS');
    await c.upgrade();
    await c.cmd('EHLO client.example.net');
    assert.equal((await c.cmd(`AUTH PLAIN ${plainToken('alice@example.test', 'secret')}`)).code, 235);
    const n = h.queued.pushed.length;
    const reply = await sendMessage(c, 'alice@example.test', ['x@rej.test'], dotStuff(mail('x@rej.test', 'submitted')));
    assert.equal(reply.code, 250, reply.text);
    c.close();
    assert.equal(prependOf(readQueued(h.queued.pushed[n]!).envelope).length, 0);
  });

  test('the results are counted per check and result (metrics)', async () => {
    const m = await registry.getSingleMetric('fmail_mail_auth_results_total')!.get();
    const count = (check: string, result: string): number => m.values.find((v) => v.labels.check === check && v.labels.result === result)?.value ?? 0;
    assert.ok(count('spf', 'pass') >= 2);
    assert.ok(count('spf', 'temperror') >= 1);
    assert.ok(count('dkim', 'pass') >= 1);
    assert.ok(count('dkim', 'fail') >= 1);
    assert.ok(count('dmarc', 'fail') >= 3);
    assert.ok(count('arc', 'pass') >= 1);
    assert.ok(count('action', 'reject') >= 1);
    assert.ok(count('action', 'quarantine') >= 1);
  });
});
