// DKIM signing checked by an independent verifier: a message submitted (AUTH) and relayed to a
// sink carries RSA and Ed25519 signatures that Debian python3-dkim's dkimverify accepts against
// the records `fmail dkim keygen` printed (served by the loopback DNS server); one changed body
// byte makes both fail. Bounces are signed too (with the host name's parent domain key).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import nodemailer from 'nodemailer';

import { silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { start as startSmtpd } from '../../src/smtpd/index.js';
import { type DnsServer, startDnsServer } from '../helpers/dns-server.js';
import { ROOT, fmailSync } from '../helpers/fmail-process.js';
import { waitFor } from '../helpers/tmp.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

const PYTHON = '/usr/bin/python3';
const VERIFY = path.join(ROOT, 'test/helpers/dkimverify.py');
const haveDkimpy = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import dkim, dns.resolver, nacl'], { timeout: 10_000 }).status === 0;

/** keygen - run `fmail dkim keygen`; the zone line made of the record it printed. */
function keygen(configFile: string, domain: string, selector: string, type: string): string {
  const r = fmailSync(['dkim', 'keygen', domain, '--selector', selector, '--type', type, '-c', configFile]);
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${selector}._domainkey.${domain}. IN TXT`));
  assert.ok(line, r.stdout);
  const value = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  return `${selector}._domainkey.${domain} TXT ${value}`;
}

/** dkimverify - run it (asynchronously: the DNS server it asks lives in this process). */
async function dkimverify(dns: DnsServer, msg: Buffer, index: number): Promise<{ ok: boolean; out: string }> {
  const child = spawn(PYTHON, [VERIFY, String(dns.port), '--index', String(index)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.end(msg);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { ok: status === 0, out };
}

describe('mail-auth: DKIM signing, checked by dkimverify', { skip: !haveDkimpy && !process.env.CI ? 'python3-dkim not installed' : false }, () => {
  let dns: DnsServer;
  let f: Fancy;
  let smtpd: RunningServer;
  let sink: Sink;
  before(async () => {
    sink = await startSink();
    dns = await startDnsServer('');
    f = await startFancy({ smtp_out: { routes: { 'remote.test': `127.0.0.1:${sink.port}` } }, dns: { servers: [dns.address] } });
    const configFile = path.join(f.dir, 'fmail.toml');
    writeFileSync(configFile, `data_dir = ${JSON.stringify(f.dir)}\n`);
    dns.set([keygen(configFile, 'example.test', 's1', 'rsa'), keygen(configFile, 'example.test', 'e1', 'ed25519'), keygen(configFile, 'fancymail.test', 'b1', 'rsa')].join('\n'));
    smtpd = await startSmtpd({ config: f.config, logger: silentLogger() });
  });
  after(async () => {
    await smtpd?.close();
    await f?.stop();
    await sink?.close();
    await dns?.close();
  });

  test('submitted mail relayed to a sink: RSA and Ed25519 signatures verify; one body byte changed fails both', async () => {
    const port = Number(smtpd.addresses.submission!.split(':').pop());
    const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice@example.test', pass: 'secret' } });
    const msg = message('signed by us', 'A body line.\r\nAnother one.\r\n');
    await t.sendMail({ envelope: { from: 'alice@example.test', to: ['bob@remote.test'] }, raw: msg });
    t.close();
    const got = await waitFor(() => sink.messages.find((m) => m.data.includes('signed by us')), 20_000);
    const text = got.data.toString();
    assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.test;/m);
    assert.match(text, /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=example\.test;/m);
    const sigs = [...text.matchAll(/^DKIM-Signature:/gm)].length;
    assert.equal(sigs, 2);
    for (let i = 0; i < sigs; i++) {
      const r = await dkimverify(dns, got.data, i);
      assert.ok(r.ok, `signature ${i}: ${r.out}`);
      assert.match(r.out, /signature ok/);
    }
    const tampered = Buffer.from(text.replace('Another one.', 'Another one!'));
    assert.equal(tampered.length, got.data.length);
    for (let i = 0; i < sigs; i++) {
      const r = await dkimverify(dns, tampered, i);
      assert.ok(!r.ok, `tampered signature ${i} must fail: ${r.out}`);
      // dkimverify says so, or (body hash) ends with dkimpy's ValidationError; both exit non-zero.
      assert.match(r.out, /signature verification failed|body hash mismatch/);
    }
    await f.waitLog((l) => l.event === 'smtp-out.dkim_signed' && l.selectors === 'e1:ed25519,s1:rsa');
  });

  test('a bounce to a remote sender is signed with the key of the host name\'s domain', async () => {
    sink.onRcpt = (a) => (a === 'gone@remote.test' ? [550, '5.1.1 <gone@remote.test>: user unknown'] : null);
    await f.inject('carol@remote.test', ['gone@remote.test'], message('will bounce'));
    const dsn = await waitFor(() => sink.messages.find((m) => m.to.includes('carol@remote.test') && m.data.includes('will bounce')), 30_000);
    sink.onRcpt = null;
    assert.match(dsn.data.toString(), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=fancymail\.test;/m);
    const r = await dkimverify(dns, dsn.data, 0);
    assert.ok(r.ok, r.out);
  });

  test('mail that was not authenticated is not signed', async () => {
    await f.inject('dave@elsewhere.test', ['x@remote.test'], message('relayed, not ours'));
    const got = await waitFor(() => sink.messages.find((m) => m.data.includes('relayed, not ours')), 20_000);
    assert.doesNotMatch(got.data.toString(), /DKIM-Signature/);
  });
});
