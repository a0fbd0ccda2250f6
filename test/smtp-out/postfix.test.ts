// Interop with a real MTA: a private Postfix instance (own config_directory, loopback port) as
// the remote peer receiving our mail, and as a sender relaying mail to our smtpd.

import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { simpleParser } from 'mailparser';
import SMTPConnection from 'nodemailer/lib/smtp-connection';

import { type PostfixInstance, postfixAvailable, startPostfix } from '../helpers/postfix.js';
import { freePort, tempDir, waitFor } from '../helpers/tmp.js';
import { toolSkip } from '../helpers/tools.js';
import { type Fancy, message, startFancy } from '../router/harness.js';

const skip = toolSkip('postfix') || (postfixAvailable() ? false : 'postfix needs root here');

describe('interop with Postfix', { skip }, () => {
  const tmp = tempDir('fmail-postfix-');
  let f: Fancy;
  let pf: PostfixInstance;

  before(async () => {
    chmodSync(tmp.dir, 0o755); // Postfix's own users must reach its folders inside
    const pfPort = await freePort();
    const smtpPort = await freePort();
    f = await startFancy({
      smtp_out: { routes: { 'pf.test': `127.0.0.1:${pfPort}` } },
      smtpd: { host: '127.0.0.1', port: smtpPort },
    } as Parameters<typeof startFancy>[0]);
    // smtpd too, so Postfix can relay to us
    const { start } = await import('../../src/smtpd/index.js');
    f.system.servers.push(await start({ config: f.config, logger: (await import('../../src/shared/log.js')).silentLogger() }));
    pf = startPostfix({ dir: path.join(tmp.dir, 'pf'), port: pfPort, mailboxes: { 'pf.test': ['paul', 'pia'] }, relay: { 'example.test': `127.0.0.1:${smtpPort}` } });
  });
  after(async () => {
    pf?.stop();
    await f?.stop();
    tmp.cleanup();
  });

  test('Postfix receives our mail for two recipients, bytes intact', async () => {
    const msg = message('to postfix', 'Hello Postfix.\r\n.dot line\r\n');
    const qid = await f.inject('alice@example.test', ['paul@pf.test', 'pia@pf.test'], msg);
    for (const rcpt of ['paul@pf.test', 'pia@pf.test']) {
      const [file] = await waitFor(() => (pf.maildirFiles(rcpt).length > 0 ? pf.maildirFiles(rcpt) : null), 60_000);
      const got = readFileSync(file!);
      // Postfix writes Maildir files with LF line ends
      assert.ok(got.includes(msg.toString().replace(/\r\n/g, '\n')), `our message follows the headers Postfix added, unchanged:\n${got}`);
      assert.match(got.toString(), /^Return-Path: <alice@example\.test>/m);
    }
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid && /^250/.test(String(l.response)));
  });

  test("Postfix's 550 for an unknown user comes back to the sender as a DSN", async () => {
    const qid = await f.inject('bob@example.test', ['nobody@pf.test'], message('to nobody at postfix'));
    const dsn = await waitFor(() => f.maildir('bob@example.test').find((m) => m.includes('to nobody at postfix')), 60_000);
    const parsed = await simpleParser(dsn);
    assert.match(parsed.text ?? '', /Status: 5\.1\.1/);
    assert.match(parsed.text ?? '', /Diagnostic-Code: smtp; 550 5\.1\.1 <nobody@pf\.test>/);
    await f.waitLog((l) => l.event === 'smtp-out.bounced' && l.qid === qid);
  });

  test('Postfix relays mail for our users to our smtpd; it lands in the Maildir', async () => {
    const conn = new SMTPConnection({ host: '127.0.0.1', port: pf.port, ignoreTLS: true, name: 'client.test' });
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    const msg = message('via postfix', 'Relayed by Postfix.\r\n');
    await new Promise<void>((resolve, reject) => conn.send({ from: 'someone@pf.test', to: ['alice@example.test'] }, msg, (err) => (err ? reject(err) : resolve())));
    conn.quit();
    const got = await waitFor(() => f.maildir('alice@example.test').find((m) => m.includes('via postfix')), 60_000);
    assert.ok(got.includes(msg.subarray(msg.indexOf('Subject:'))), `headers after Subject and body intact:\n${got}`);
    assert.match(got.toString(), /^Return-Path: <someone@pf\.test>\r$/m);
    assert.match(got.toString(), /^Delivered-To: alice@example\.test\r$/m);
  });
});
