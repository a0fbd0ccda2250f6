// The real `fmail start` with checks on and [dns] pointing at the loopback DNS server: a
// message to the MX port lands in the Maildir with our Authentication-Results under the
// Return-Path, and `fmail trace QID` shows its spf/dkim/dmarc results.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type DnsServer, startDnsServer } from '../helpers/dns-server.js';
import { type FmailProcess, type FmailSetup, fmailAsync, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { dotStuff, greet, sendMessage } from '../smtpd/harness.js';
import { inboundZone, mail } from './zone.js';

describe('mail-auth: fmail start, Maildir and fmail trace', () => {
  const tmp = tempDir('fmail-authtrace-');
  let dns: DnsServer;
  let setup: FmailSetup;
  let fmail: FmailProcess;
  before(async () => {
    dns = await startDnsServer(inboundZone());
    setup = await writeFmailConfig(path.join(tmp.dir, 'fm'), `[mail_auth]\ncheck = true\n[dns]\nservers = ["${dns.address}"]\ntimeout_ms = 1000\ntries = 1\n`);
    const r = await fmailAsync(['user', 'add', 'alice@example.test', '--password-stdin', '-c', setup.configFile], 'secret\n');
    assert.equal(r.status, 0, r.stderr);
    fmail = await startFmail(setup);
  });
  after(async () => {
    await fmail?.stop();
    await dns?.close();
    tmp.cleanup();
  });

  test('delivered with Authentication-Results; fmail trace shows the results', async () => {
    const { c } = await greet(setup.ports.smtp, { helo: 'helo.test' });
    const reply = await sendMessage(c, 'a@spf-pass.test', ['alice@example.test'], dotStuff(mail('a@spf-pass.test', 'traced')));
    c.close();
    assert.equal(reply.code, 250, reply.text);
    const qid = /queued as (\w+)/.exec(reply.text)![1]!;
    const dir = path.join(setup.dir, 'mail', 'alice@example.test', 'new');
    const stored = await waitFor(() => {
      try {
        return readdirSync(dir).map((n) => readFileSync(path.join(dir, n), 'utf8')).find((m) => m.includes('Subject: traced'));
      } catch {
        return undefined;
      }
    }, 30_000, 100);
    assert.match(stored, /^Return-Path: <a@spf-pass\.test>\r\n(Delivered-To: alice@example\.test\r\n)?Authentication-Results: mx\.fancymail\.test;\r\n dkim=none \(message not signed\);\r\n spf=pass /);
    const trace = await waitFor(
      async () => {
        const t = await fmailAsync(['trace', qid, '-c', setup.configFile]);
        return /smtpd\.checks/.test(t.stdout) && /router\.delivered/.test(t.stdout) ? t.stdout : null;
      },
      15_000,
      500,
    );
    const line = trace.split('\n').find((l) => l.includes('smtpd.checks'))!;
    for (const field of ['spf=pass', 'spf_helo=pass', 'dkim=none', 'dmarc=none', 'arc=none', 'action=accept']) assert.ok(line.includes(field), `${field} in: ${line}`);
  });
});
