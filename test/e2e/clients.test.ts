// The whole system from outside, with real clients only: `fmail start` as a child process,
// mail sent with swaks, curl and Python's smtplib (MX port, and submission with STARTTLS +
// AUTH), read back with curl pop3://, Python's poplib and mpop; Postfix relaying to us and us
// relaying to Postfix. Every body compared byte for byte.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type FmailProcess, type FmailSetup, fmailSync, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { type PostfixInstance, postfixAvailable, startPostfix } from '../helpers/postfix.js';
import { freePort, tempDir, waitFor } from '../helpers/tmp.js';
import { toolSkip } from '../helpers/tools.js';

const ALICE = 'alice@fancymail.test';
const ALICE_PW = 'alice pw;%ü';
const BOB = 'bob@fancymail.test';
const BOB_PW = 'bob-secret';

function message(tag: string, body: string): string {
  return [
    `From: Sender <sender@remote.test>`,
    `To: ${ALICE}`,
    `Subject: ${tag}`,
    `Message-ID: <${tag}@remote.test>`,
    'Date: Wed, 25 Nov 2026 12:00:00 +0000',
    '',
    body,
  ].join('\r\n');
}

/** A body with the awkward cases: dot-led lines, 8-bit text, a 998-character line. */
function trickyBody(tag: string): string {
  return [`body of ${tag}`, '.', '..two dots', '.leading dot', 'Grüße aus Köln — ✓', 'x'.repeat(998), 'end.', ''].join('\r\n');
}

function run(cmd: string, args: string[], input?: string): { status: number | null; out: string } {
  const res = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 60_000 });
  return { status: res.status, out: (res.stdout ?? '') + (res.stderr ?? '') };
}

function maildirMessages(setup: FmailSetup, user: string): Buffer[] {
  const base = path.join(setup.dir, 'mail', user);
  const files: string[] = [];
  for (const sub of ['new', 'cur']) {
    try {
      for (const f of readdirSync(path.join(base, sub))) files.push(path.join(base, sub, f));
    } catch {
      // not there yet
    }
  }
  return files.map((f) => readFileSync(f));
}

async function waitForMessage(setup: FmailSetup, user: string, tag: string): Promise<Buffer> {
  return waitFor(() => maildirMessages(setup, user).find((m) => m.includes(`Subject: ${tag}\r\n`)), 30_000, 100);
}

describe('end to end with real clients', { skip: toolSkip('swaks', 'curl', 'python3', 'mpop') }, () => {
  const tmp = tempDir('fmail-e2e-');
  let setup: FmailSetup;
  let fmail: FmailProcess;
  let postfix: PostfixInstance | null = null;
  let postfixPort = 0;

  before(async () => {
    postfixPort = await freePort();
    setup = await writeFmailConfig(path.join(tmp.dir, 'fm'), `[smtp_out]\nroutes = { "postfix.test" = "127.0.0.1:${postfixPort}" }\n`);
    for (const [user, pw] of [
      [ALICE, ALICE_PW],
      [BOB, BOB_PW],
    ] as const) {
      const res = fmailSync(['user', 'add', user, '--password-stdin', '-c', setup.configFile], pw + '\n');
      assert.equal(res.status, 0, res.stderr);
    }
    fmail = await startFmail(setup);
  });

  after(async () => {
    postfix?.stop();
    await fmail?.stop();
    tmp.cleanup();
  });

  test('swaks to the MX port', async () => {
    const original = message('swaks-mx', trickyBody('swaks-mx'));
    const res = run('swaks', ['--server', `127.0.0.1:${setup.ports.smtp}`, '--from', 'sender@remote.test', '--to', ALICE, '--data', '-'], original);
    assert.equal(res.status, 0, res.out);
    assert.match(res.out, /250 2\.0\.0 Ok: queued as \w+/);
    const stored = await waitForMessage(setup, ALICE, 'swaks-mx');
    // swaks ends --data with one CRLF of its own.
    assert.ok(stored.toString('utf8').endsWith(original + '\r\n'), 'body byte-exact');
    assert.match(stored.toString('utf8'), /^Return-Path: <sender@remote\.test>\r\nDelivered-To: alice@fancymail\.test\r\nReceived: /);

    // fmail trace follows that queue id through smtpd, queued and the router.
    const qid = /queued as (\w+)/.exec(res.out)![1]!;
    const trace = await waitFor(() => {
      const t = fmailSync(['trace', qid, '-c', setup.configFile]);
      // Each thread flushes its log buffer every second: wait until all have.
      return /smtpd\.queued/.test(t.stdout) && /router\.delivered/.test(t.stdout) ? t.stdout : null;
    }, 10_000, 500);
    for (const event of ['smtpd.queued', 'queued.push', 'router.delivered', 'queued.done']) assert.match(trace, new RegExp(event), trace);
  });

  test('curl smtp:// to the MX port', async () => {
    const original = message('curl-mx', trickyBody('curl-mx'));
    const file = path.join(tmp.dir, 'curl-mx.eml');
    writeFileSync(file, original);
    const res = run('curl', ['-sS', `smtp://127.0.0.1:${setup.ports.smtp}`, '--mail-from', 'sender@remote.test', '--mail-rcpt', ALICE, '-T', file]);
    assert.equal(res.status, 0, res.out);
    const stored = await waitForMessage(setup, ALICE, 'curl-mx');
    assert.ok(stored.toString('utf8').endsWith(original), 'body byte-exact');
  });

  test('smtplib: submission with STARTTLS and AUTH, to a local and a relayed recipient', async () => {
    const original = message('smtplib-sub', trickyBody('smtplib-sub'));
    const script = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
data = sys.stdin.buffer.read()
with smtplib.SMTP('127.0.0.1', ${setup.ports.submission}, timeout=30) as s:
    s.ehlo(); s.starttls(context=ctx); s.ehlo()
    s.login(${JSON.stringify(BOB)}, ${JSON.stringify(BOB_PW)})
    refused = s.sendmail(${JSON.stringify(BOB)}, [${JSON.stringify(ALICE)}], data)
    assert not refused, refused
print('sent')
`;
    const res = run('python3', ['-c', script], original);
    assert.equal(res.status, 0, res.out);
    const stored = await waitForMessage(setup, ALICE, 'smtplib-sub');
    assert.ok(stored.toString('utf8').endsWith(original), 'body byte-exact');
  });

  test('the MX port refuses relaying for an unauthenticated client', () => {
    const res = run('swaks', ['--server', `127.0.0.1:${setup.ports.smtp}`, '--from', 'x@remote.test', '--to', 'victim@elsewhere.test', '--quit-after', 'RCPT']);
    assert.notEqual(res.status, 0);
    assert.match(res.out, /554 5\.7\.1/);
  });

  test('curl pop3:// lists and retrieves byte-exact', async () => {
    const stored = await waitForMessage(setup, ALICE, 'swaks-mx');
    const list = run('curl', ['-sS', '--user', `${ALICE}:${ALICE_PW}`, `pop3://127.0.0.1:${setup.ports.pop3}/`]);
    assert.equal(list.status, 0, list.out);
    const lines = list.out.trim().split(/\r?\n/);
    assert.ok(lines.length >= 3, list.out);
    // Find the swaks message by size, then RETR it.
    const entry = lines.map((l) => l.split(' ')).find(([, size]) => Number(size) === stored.length);
    assert.ok(entry, `a message of ${stored.length} bytes is listed: ${list.out}`);
    const retr = spawnSync('curl', ['-sS', '--user', `${ALICE}:${ALICE_PW}`, `pop3://127.0.0.1:${setup.ports.pop3}/${entry[0]}`], { timeout: 60_000 });
    assert.equal(retr.status, 0);
    assert.ok(retr.stdout.equals(stored), 'RETR returns exactly the Maildir bytes');
  });

  test('poplib over STLS retrieves every message byte-exact', async () => {
    const script = `
import poplib, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3('127.0.0.1', ${setup.ports.pop3}, timeout=30)
p.stls(context=ctx)
p.user(${JSON.stringify(ALICE)}); p.pass_(${JSON.stringify(ALICE_PW)})
count, _ = p.stat()
out = []
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    out.append(b'\\r\\n'.join(lines).decode('utf-8', 'surrogateescape') + '\\r\\n')
p.quit()
sys.stdout.write(json.dumps(out))
`;
    const res = run('python3', ['-c', script]);
    assert.equal(res.status, 0, res.out);
    const got = (JSON.parse(res.out) as string[]).sort();
    const want = maildirMessages(setup, ALICE)
      .map((m) => m.toString('utf8'))
      .sort();
    assert.equal(got.length, want.length);
    assert.deepEqual(got, want);
  });

  test('mpop fetches the whole mailbox into a local Maildir byte-exact', async () => {
    const local = path.join(tmp.dir, 'mpop-maildir');
    for (const sub of ['new', 'cur', 'tmp']) spawnSync('mkdir', ['-p', path.join(local, sub)]);
    const rc = path.join(tmp.dir, 'mpoprc');
    writeFileSync(
      rc,
      [
        'defaults',
        'tls on',
        'tls_starttls on',
        'tls_certcheck off',
        'account fm',
        'host 127.0.0.1',
        `port ${setup.ports.pop3}`,
        `user ${ALICE}`,
        `password ${ALICE_PW}`,
        'auth user',
        'keep on',
        `delivery maildir ${local}`,
        `uidls_file ${path.join(tmp.dir, 'mpop-uidls')}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const res = run('mpop', ['-C', rc, '-a', '-q']);
    assert.equal(res.status, 0, res.out);
    const fetched = readdirSync(path.join(local, 'new')).map((f) => readFileSync(path.join(local, 'new', f)).toString('utf8'));
    const want = maildirMessages(setup, ALICE).map((m) => m.toString('utf8'));
    assert.equal(fetched.length, want.length);
    // mpop stores LF line ends in Maildir and may add its own Received header: compare normalised bodies.
    const norm = (s: string): string => s.replace(/\r\n/g, '\n').replace(/^Received: from 127\.0\.0\.1[^\n]*\n(\s[^\n]*\n)*/m, '');
    assert.deepEqual(fetched.map(norm).sort(), want.map(norm).sort());
  });

  describe('with Postfix as the peer', { skip: postfixAvailable() ? false : process.env.CI ? undefined : 'needs root and postfix' }, () => {
    before(() => {
      postfix = startPostfix({
        dir: path.join(tmp.dir, 'postfix'),
        port: postfixPort,
        mailboxes: { 'postfix.test': ['carol'] },
        relay: { 'fancymail.test': `127.0.0.1:${setup.ports.smtp}` },
      });
    });

    test('Postfix relays mail to FancyMail', async () => {
      const original = message('via-postfix', trickyBody('via-postfix'));
      const res = run('swaks', ['--server', `127.0.0.1:${postfixPort}`, '--from', 'carol@postfix.test', '--to', ALICE, '--data', '-'], original);
      assert.equal(res.status, 0, res.out);
      const stored = await waitForMessage(setup, ALICE, 'via-postfix');
      // swaks ends --data with one CRLF of its own.
      assert.ok(stored.toString('utf8').endsWith(original + '\r\n'), 'body byte-exact');
    });

    test('FancyMail relays mail to Postfix', async () => {
      const original = message('to-postfix', trickyBody('to-postfix')).replace(`To: ${ALICE}`, 'To: carol@postfix.test');
      const script = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP('127.0.0.1', ${setup.ports.submission}, timeout=30) as s:
    s.starttls(context=ctx)
    s.login(${JSON.stringify(BOB)}, ${JSON.stringify(BOB_PW)})
    s.sendmail(${JSON.stringify(BOB)}, ['carol@postfix.test'], sys.stdin.buffer.read())
`;
      const res = run('python3', ['-c', script], original);
      assert.equal(res.status, 0, res.out);
      const file = await waitFor(() => postfix!.maildirFiles('carol@postfix.test').find((f) => readFileSync(f, 'utf8').includes('Subject: to-postfix')), 60_000, 200);
      // Postfix's virtual(8) stores LF line ends.
      const got = readFileSync(file, 'utf8');
      assert.ok(got.endsWith(original.replace(/\r\n/g, '\n')), 'body byte-exact (modulo Postfix LF storage)');
    });
  });
});
