// Real SMTP clients against smtpd: Python's smtplib (plain, STARTTLS + AUTH PLAIN and LOGIN,
// implicit TLS), curl (smtp://, STARTTLS with --ssl-reqd, smtps://) and swaks (--tls --auth).
// Each delivers a message with dot-leading lines, 8-bit bytes and 998-character lines (and a
// 10 MiB body) into `incoming`; the queue file after our Received header must be byte-exact.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { toolSkip } from '../helpers/tools.js';
import { type Harness, readQueued, startHarness } from './harness.js';

/** swaks needs Perl's Net::SSLeay for --tls (Debian libnet-ssleay-perl). */
function swaksSkip(): string | false {
  const missing = toolSkip('swaks');
  if (missing) return missing;
  if (spawnSync('perl', ['-MNet::SSLeay', '-e', '1'], { stdio: 'ignore' }).status === 0) return false;
  if (process.env.CI) throw new Error('CI is missing Net::SSLeay (apt install libnet-ssleay-perl) for swaks --tls');
  return 'missing Net::SSLeay for swaks --tls';
}

/** A message exercising dot-stuffing, 8-bit content and the longest legal lines. */
function makeMessage(bodyBytes: number): Buffer {
  const head = Buffer.from(
    'From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
  );
  const special = Buffer.from(
    '.one leading dot\r\n..two leading dots\r\n.\r\nbetween\r\n. \r\n' + 'café, naïve, Ελληνικά, 日本語\r\n' + 'L'.repeat(998) + '\r\n',
    'utf8',
  );
  const parts = [head, special];
  let size = head.length + special.length;
  let i = 0;
  while (size < bodyBytes) {
    const line = Buffer.from(`${i % 50 === 0 ? '.' : ''}line ${i} ${'x'.repeat(60 + (i % 900))} é\r\n`, 'utf8');
    parts.push(line);
    size += line.length;
    i++;
  }
  return Buffer.concat(parts);
}

interface Run {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(input ?? '');
  });
}

const PY = `
import smtplib, ssl, sys
mode, port, user, pw, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
data = open(path, 'rb').read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == 'ssl':
    s = smtplib.SMTP_SSL('127.0.0.1', port, context=ctx, timeout=60)
else:
    s = smtplib.SMTP('127.0.0.1', port, timeout=60)
s.ehlo('python.example.net')
if mode in ('plain-auth', 'login'):
    s.starttls(context=ctx)
    s.ehlo('python.example.net')
if mode != 'plain':
    s.user, s.password = user, pw
    if mode == 'login':
        s.auth('LOGIN', s.auth_login, initial_response_ok=False)
    else:
        s.auth('PLAIN', s.auth_plain)
sender = user if mode != 'plain' else 'someone@example.net'
code, resp = s.mail(sender, ['BODY=8BITMIME'])
assert code == 250, resp
code, resp = s.rcpt('bob@example.test')
assert code == 250, resp
code, resp = s.data(data)
print(code, resp.decode())
s.quit()
`;

function qidFrom(out: string): string {
  const m = /2\.0\.0 Ok: queued as (\w+)/.exec(out);
  assert.ok(m, `no queue id in client output:\n${out.slice(-3000)}`);
  return m[1]!;
}

describe('real SMTP clients deliver byte-exact into incoming', () => {
  let h: Harness;
  const small = makeMessage(64 * 1024);
  const large = makeMessage(10 * 1024 * 1024);
  let smallFile = '';
  let largeFile = '';
  // swaks always ends DATA with "\r\n.\r\n" after the text it is given, so it gets the
  // message without its final CRLF.
  let smallSwaks = '';
  let largeSwaks = '';
  before(async () => {
    h = await startHarness();
    smallFile = path.join(h.dir, 'small.eml');
    largeFile = path.join(h.dir, 'large.eml');
    writeFileSync(smallFile, small);
    writeFileSync(largeFile, large);
    smallSwaks = path.join(h.dir, 'small-swaks.eml');
    largeSwaks = path.join(h.dir, 'large-swaks.eml');
    writeFileSync(smallSwaks, small.subarray(0, -2));
    writeFileSync(largeSwaks, large.subarray(0, -2));
  });
  after(async () => {
    await h.close();
  });

  const check = (qid: string, expected: Buffer, auth: string): void => {
    const file = h.queued.pushed.find((p) => path.basename(p) === qid);
    assert.ok(file, `qid ${qid} pushed`);
    const q = readQueued(file);
    assert.equal(q.envelope.auth, auth);
    assert.deepEqual(q.envelope.rcpt, ['bob@example.test']);
    assert.equal(q.body.length, expected.length, 'same length');
    assert.ok(q.body.equals(expected), 'byte-exact');
  };

  for (const [mode, role, auth] of [
    ['plain', 'smtp', ''],
    ['plain-auth', 'submission', 'alice@example.test'],
    ['login', 'submission', 'alice@example.test'],
    ['ssl', 'submissions', 'alice@example.test'],
  ] as const) {
    test(`python smtplib ${mode} on ${role}`, { skip: toolSkip('python3') }, async () => {
      for (const [file, msg] of [
        [smallFile, small],
        [largeFile, large],
      ] as const) {
        const r = await run('python3', ['-c', PY, mode, String(h.port(role)), 'alice@example.test', 'secret', file]);
        assert.equal(r.code, 0, r.out);
        check(qidFrom(r.out), msg, auth);
      }
    });
  }

  test('curl smtp:// (plain MX), smtp:// --ssl-reqd with AUTH, smtps://', { skip: toolSkip('curl') }, async () => {
    const cases: Array<[string[], string]> = [
      [[`smtp://127.0.0.1:${h.port('smtp')}`, '--mail-from', 'someone@example.net'], ''],
      [[`smtp://127.0.0.1:${h.port('submission')}`, '--ssl-reqd', '-k', '-u', 'alice@example.test:secret', '--mail-from', 'alice@example.test'], 'alice@example.test'],
      [[`smtps://127.0.0.1:${h.port('submissions')}`, '-k', '-u', 'alice@example.test:secret', '--mail-from', 'alice@example.test'], 'alice@example.test'],
    ];
    for (const [args, auth] of cases) {
      for (const [file, msg] of [
        [smallFile, small],
        [largeFile, large],
      ] as const) {
        const r = await run('curl', ['-sS', '-v', '--max-time', '120', ...args, '--mail-rcpt', 'bob@example.test', '--upload-file', file]);
        assert.equal(r.code, 0, r.out.slice(-3000));
        check(qidFrom(r.out), msg, auth);
      }
    }
  });

  test('swaks plain, and --tls --auth PLAIN / LOGIN on submission', { skip: swaksSkip() }, async () => {
    const cases: Array<[string[], string]> = [
      [['--port', String(h.port('smtp')), '--from', 'someone@example.net'], ''],
      [['--port', String(h.port('submission')), '--tls', '--auth', 'PLAIN', '--auth-user', 'alice@example.test', '--auth-password', 'secret', '--from', 'alice@example.test'], 'alice@example.test'],
      [['--port', String(h.port('submission')), '--tls', '--auth', 'LOGIN', '--auth-user', 'alice@example.test', '--auth-password', 'secret', '--from', 'alice@example.test'], 'alice@example.test'],
    ];
    for (const [args, auth] of cases) {
      for (const [file, msg] of [
        [smallSwaks, small],
        [largeSwaks, large],
      ] as const) {
        const r = await run('swaks', ['--server', '127.0.0.1', '--helo', 'swaks.example.net', ...args, '--to', 'bob@example.test', '--data', `@${file}`, '--timeout', '120']);
        assert.equal(r.code, 0, r.out.slice(-3000));
        check(qidFrom(r.out), msg, auth);
      }
    }
  });
});
