// Unit tests: next hop selection (routes, relay, MX with null MX and fallbacks), status codes,
// the DSN builder, mailboxd error classification.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';

import { dnsFor } from '../../src/mail/auth/dns.js';
import { buildDsn, headerBlock } from '../../src/mail/dsn.js';
import { classifyError } from '../../src/router/deliver.js';
import { SmtpOutConfig } from '../../src/smtp-out/config.js';
import { DeliveryError, mxHosts, nexthopFor, parseHostPort } from '../../src/smtp-out/nexthop.js';
import { statusOf } from '../../src/smtp-out/outbound.js';
import { startDnsServer } from '../helpers/dns-server.js';

describe('next hop', () => {
  test('host:port forms', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:2526', 25), { host: '127.0.0.1', port: 2526 });
    assert.deepEqual(parseHostPort('mx.example.net', 25), { host: 'mx.example.net', port: 25 });
    assert.deepEqual(parseHostPort('[::1]:2525', 25), { host: '::1', port: 2525 });
    assert.throws(() => parseHostPort('a:b:c', 25));
  });

  test('routes win over relay_host, which wins over MX; ".domain" covers subdomains', async () => {
    const cfg = SmtpOutConfig.parse({ routes: { 'Example.NET': '127.0.0.1:2526', '.sub.test': '10.0.0.1:25' }, relay_host: 'smart:587', relay_user: 'u', relay_password: 'p' });
    assert.deepEqual(await nexthopFor(cfg, 'example.net').hosts(), [{ host: '127.0.0.1', port: 2526 }]);
    assert.deepEqual(await nexthopFor(cfg, 'a.sub.test').hosts(), [{ host: '10.0.0.1', port: 25 }]);
    const relay = nexthopFor(cfg, 'other.org');
    assert.deepEqual(await relay.hosts(), [{ host: 'smart', port: 587 }]);
    assert.deepEqual(relay.auth, { user: 'u', pass: 'p' });
    assert.equal(nexthopFor(SmtpOutConfig.parse({}), 'other.org').key, 'mx:other.org');
  });

  test('MX: preference order, A fallback, null MX permanent, NXDOMAIN permanent, timeouts temporary', async () => {
    // A real DNS server on loopback; a bound UDP port that never answers for the timeout.
    const server = await startDnsServer(
      ['x.test MX 20 b.mx', 'x.test MX 10 a.mx', 'a.mx A 127.0.0.2', 'b.mx A 127.0.0.3', 'b.mx AAAA ::1', 'nomx.test A 127.0.0.4', 'null.test MX 0 .'].join('\n'),
    );
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    try {
      const byName = dnsFor({ servers: [server.address], timeout_ms: 1000, tries: 1, cache_s: 0 });
      // With [dns] servers set, MX names are resolved there too; the name stays for TLS.
      assert.deepEqual(await mxHosts('x.test', 25, byName), [
        { host: '127.0.0.2', port: 25, name: 'a.mx' },
        { host: '127.0.0.3', port: 25, name: 'b.mx' },
        { host: '::1', port: 25, name: 'b.mx' },
      ]);
      assert.deepEqual(await mxHosts('nomx.test', 25, byName), [{ host: '127.0.0.4', port: 25, name: 'nomx.test' }]);
      await assert.rejects(mxHosts('null.test', 25, byName), (e: DeliveryError) => e.permanent && e.status === '5.1.10');
      await assert.rejects(mxHosts('gone.test', 25, byName), (e: DeliveryError) => e.permanent && e.status === '5.1.2');
      const dead = dnsFor({ servers: [`127.0.0.1:${silent.address().port}`], timeout_ms: 200, tries: 1, cache_s: 0 });
      await assert.rejects(mxHosts('x.test', 25, dead), (e: DeliveryError) => !e.permanent && e.status.startsWith('4.'));
    } finally {
      silent.close();
      await server.close();
    }
  });
});

describe('status codes and classification', () => {
  test('enhanced status from the reply, else from the basic code', () => {
    assert.equal(statusOf('550 5.1.1 <x@y>: user unknown', 550), '5.1.1');
    assert.equal(statusOf('452-4.2.2 mailbox full', 452), '4.2.2');
    assert.equal(statusOf('554 go away', 554), '5.0.0');
    assert.equal(statusOf('421 closing', 421), '4.0.0');
  });

  test('IPC refusals are decided by their status code, not their words', () => {
    const quota = classifyError('a@b', 'mailboxd', '5.2.2 quota exceeded');
    assert.deepEqual([quota.kind, quota.kind !== 'ok' && quota.status], ['perm', '5.2.2']);
    assert.equal(classifyError('a@b', 'mailboxd', '5.3.4 message too large: limit is 10 bytes').kind, 'perm');
    assert.equal(classifyError('a@b', 'mailboxd', '5.1.1 unknown user a@b').kind, 'perm');
    // Words alone decide nothing: a temporary code with "quota" in its text is retried.
    assert.equal(classifyError('a@b', 'mailboxd', '4.3.1 store failed: quota file full').kind, 'temp');
    assert.equal(classifyError('a@b', 'mailboxd', '4.3.0 store failed').kind, 'temp');
    // An error without a code (an older server) is retried, never bounced.
    assert.equal(classifyError('a@b', 'mailboxd', 'no such user').kind, 'temp');
    assert.equal(classifyError('a@b', 'smtp-out', '').kind, 'temp');
  });
});

describe('DSN builder', () => {
  const dsn = buildDsn({
    hostname: 'mx.t',
    qid: 'Q1',
    to: 'sender@a.test',
    arrival: '2026-11-25T12:00:00.000Z',
    recipients: [
      { rcpt: 'x@b.test', status: '5.1.1', diagnostic: '550 5.1.1 no\r\nInjected: header', remoteMta: 'mx.b.test' },
      { rcpt: 'jörg@b.test', status: 'bogus', diagnostic: 'x' },
    ],
    headers: Buffer.from('Subject: hi\nFrom: sender@a.test\n'),
  }).toString('utf8');

  test('multipart/report with the three parts and per-recipient fields', () => {
    assert.match(dsn, /^Content-Type: multipart\/report; report-type=delivery-status;\r\n\tboundary="([^"]+)"\r$/m);
    const boundary = /boundary="([^"]+)"/.exec(dsn)![1]!;
    assert.equal(dsn.split(`--${boundary}\r\n`).length, 4, 'three parts');
    assert.ok(dsn.endsWith(`--${boundary}--\r\n`));
    assert.match(dsn, /^Content-Type: message\/delivery-status\r$/m);
    assert.match(dsn, /^Content-Type: text\/rfc822-headers\r$/m);
    assert.match(dsn, /^Reporting-MTA: dns; mx\.t\r$/m);
    assert.match(dsn, /^Final-Recipient: rfc822; x@b\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; mx\.b\.test\r\nDiagnostic-Code: smtp; 550 5\.1\.1 no Injected: header\r$/m);
    assert.match(dsn, /^Final-Recipient: utf-8; jörg@b\.test\r\nAction: failed\r\nStatus: 5\.0\.0\r$/m);
    assert.match(dsn, /^From: Mail Delivery System <MAILER-DAEMON@mx\.t>\r$/m);
    assert.match(dsn, /^Subject: hi\r\nFrom: sender@a\.test\r$/m, 'original headers with CRLF');
    assert.doesNotMatch(dsn, /^Injected:/m);
    assert.doesNotMatch(dsn.replace(/\r\n/g, ''), /\n/, 'only CRLF line ends');
  });

  test('headerBlock stops at the first blank line', () => {
    assert.equal(headerBlock(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n')).toString(), 'A: 1\r\nB: 2');
    assert.equal(headerBlock(Buffer.from('A: 1\nB: 2\n\nbody')).toString(), 'A: 1\nB: 2');
  });
});
