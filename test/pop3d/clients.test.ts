// Real POP3 clients against pop3d (in front of fake authd/mailboxd): Python's poplib (plain
// and STLS), curl pop3:// (list, retrieve, delete), mpop fetching a whole mailbox.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { toolSkip } from '../helpers/tools.js';
import { ALICE, ALICE_PW, type Harness, startHarness } from './harness.js';

/** run - a child process with a time limit; output as bytes (async: the server is in-process). */
function run(cmd: string, args: string[], input?: string): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.end(input ?? '');
  });
}

/** The awkward cases: dot-led lines, 8-bit text, a long line, no final line end. */
const MESSAGES = [
  'From: a@remote.test\r\nSubject: one\r\n\r\nhello\r\n',
  'From: b@remote.test\r\nSubject: two\r\n\r\n.\r\n..two dots\r\n.leading\r\nGrüße aus Köln ✓\r\n' + 'x'.repeat(998) + '\r\nend.',
  'From: c@remote.test\r\nSubject: three\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe4\xf6\xfc latin-1 bytes\r\n.\r\n',
].map((s, i) => (i === 2 ? Buffer.from(s, 'latin1') : Buffer.from(s)));

/** onTheWire - what a client reassembles: CRLF lines, a final CRLF added if missing. */
const wire = (b: Buffer): Buffer => (b.subarray(-2).toString() === '\r\n' ? b : Buffer.concat([b, Buffer.from('\r\n')]));

describe('real POP3 clients', { skip: toolSkip('python3', 'curl', 'mpop') }, () => {
  let h: Harness;
  const fill = (): void => {
    h.fakes.boxes.set(ALICE, []);
    for (const m of MESSAGES) h.fakes.add(ALICE, m);
  };
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
  });

  const poplib = (stls: boolean): string => `
import poplib, ssl, sys, json, base64
p = poplib.POP3('127.0.0.1', ${h.port}, timeout=60)
if ${stls ? 'True' : 'False'}:
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    p.stls(context=ctx)
p.user(${JSON.stringify(ALICE)}); p.pass_(${JSON.stringify(ALICE_PW)})
count, size = p.stat()
out = {'count': count, 'size': size, 'uidl': [u.decode() for u in p.uidl()[1]], 'msgs': []}
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    out['msgs'].append(base64.b64encode(b'\\r\\n'.join(lines) + b'\\r\\n').decode())
top = p.top(2, 1)[1]
out['top'] = base64.b64encode(b'\\r\\n'.join(top)).decode()
p.dele(1)
p.quit()
sys.stdout.write(json.dumps(out))
`;

  for (const stls of [false, true]) {
    test(`poplib ${stls ? 'over STLS' : 'in plain text (loopback)'}: STAT, UIDL, RETR byte-exact, TOP, DELE`, async () => {
      fill();
      const uids = h.fakes.boxes.get(ALICE)!.map((m, i) => `${i + 1} ${m.uid}`);
      const res = await run('python3', ['-c', poplib(stls)]);
      assert.equal(res.status, 0, res.stderr);
      const out = JSON.parse(res.stdout.toString()) as { count: number; size: number; uidl: string[]; msgs: string[]; top: string };
      assert.equal(out.count, 3);
      assert.equal(out.size, MESSAGES.reduce((s, m) => s + m.length, 0));
      assert.deepEqual(out.uidl, uids);
      out.msgs.forEach((b64, i) => assert.ok(Buffer.from(b64, 'base64').equals(wire(MESSAGES[i]!)), `message ${i + 1}`));
      assert.equal(Buffer.from(out.top, 'base64').toString(), 'From: b@remote.test\r\nSubject: two\r\n\r\n.');
      assert.equal(h.fakes.boxes.get(ALICE)!.length, 2, 'DELE + QUIT removed one');
    });
  }

  test('curl pop3://: list, retrieve byte-exact, delete', async () => {
    fill();
    const base = `pop3://127.0.0.1:${h.port}`;
    const auth = ['-sS', '--user', `${ALICE}:${ALICE_PW}`];
    const list = await run('curl', [...auth, `${base}/`]);
    assert.equal(list.status, 0, list.stderr);
    assert.equal(list.stdout.toString(), MESSAGES.map((m, i) => `${i + 1} ${m.length}\r\n`).join(''));
    for (let i = 0; i < MESSAGES.length; i++) {
      const retr = await run('curl', [...auth, `${base}/${i + 1}`]);
      assert.equal(retr.status, 0, retr.stderr);
      assert.ok(retr.stdout.equals(wire(MESSAGES[i]!)), `message ${i + 1} byte-exact`);
    }
    const dele = await run('curl', [...auth, '--request', 'DELE', `${base}/2`, '--list-only']);
    assert.equal(dele.status, 0, dele.stderr);
    const left = h.fakes.boxes.get(ALICE)!.map((m) => m.data);
    assert.equal(left.length, 2);
    assert.ok(left[0]!.equals(MESSAGES[0]!) && left[1]!.equals(MESSAGES[2]!));
  });

  test('curl pop3s:// (implicit TLS) retrieves', async () => {
    fill();
    const res = await run('curl', ['-sS', '--insecure', '--user', `${ALICE}:${ALICE_PW}`, `pop3s://127.0.0.1:${h.pop3sPort}/1`]);
    assert.equal(res.status, 0, res.stderr);
    assert.ok(res.stdout.equals(MESSAGES[0]!));
  });

  for (const tls of [false, true]) {
    test(`mpop fetches the whole mailbox into a Maildir${tls ? ' over STLS' : ''}`, async () => {
      fill();
      const work = path.join(h.dir, `mpop-${tls ? 'tls' : 'plain'}`);
      const maildir = path.join(work, 'Maildir');
      for (const sub of ['new', 'cur', 'tmp']) mkdirSync(path.join(maildir, sub), { recursive: true });
      const rc = path.join(work, 'mpoprc');
      writeFileSync(
        rc,
        [
          'defaults',
          tls ? 'tls on' : 'tls off',
          'tls_starttls on',
          'tls_certcheck off',
          'account fm',
          'host 127.0.0.1',
          `port ${h.port}`,
          `user ${ALICE}`,
          `password ${ALICE_PW}`,
          'auth user',
          'keep off',
          'received_header off',
          `delivery maildir ${maildir}`,
          `uidls_file ${path.join(work, 'uidls')}`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      const res = await run('mpop', ['-C', rc, '-a', '-q']);
      assert.equal(res.status, 0, res.stderr);
      const fetched = readdirSync(path.join(maildir, 'new')).map((f) => readFileSync(path.join(maildir, 'new', f)));
      // Maildir files hold LF line ends: the original bytes with CRLF -> LF, nothing else changed.
      const want = MESSAGES.map((m) => Buffer.from(wire(m).toString('latin1').replace(/\r\n/g, '\n'), 'latin1'));
      const key = (b: Buffer): string => b.toString('latin1');
      assert.deepEqual(fetched.map(key).sort(), want.map(key).sort());
      assert.equal(h.fakes.boxes.get(ALICE)!.length, 0, 'keep off: mpop deleted what it fetched');
    });
  }
});
