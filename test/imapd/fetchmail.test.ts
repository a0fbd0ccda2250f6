// fetchmail (Debian's 6.4) against imapd on the real authd and mailboxd: STARTTLS with the
// certificate checked against a test CA, N messages handed one by one to an MDA that writes
// each to a file, byte for byte what mailboxd holds; then, as fetchmail does by default, the
// messages are flagged \Deleted and expunged, so a second run finds nothing.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { IpcClient } from '../../src/ipc/index.js';
import { ipcClient } from '../../src/shared/ipc-setup.js';
import { makeTestCa } from '../helpers/test-ca.js';
import { tempDir } from '../helpers/tmp.js';
import { toolSkip } from '../helpers/tools.js';
import { ALICE, ALICE_PW, type Stack, startStack } from './stack.js';

const COUNT = 60;
// fetchmail checks the certificate against the name it connects to.
const NAME = 'localhost';

function fetchmail(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('fetchmail', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

/** message - the i-th test message; every few one of the awkward kinds (8-bit, long line, MIME, dots, From_). */
function message(i: number): string {
  const head = `From: sender${i}@remote.test\r\nTo: ${ALICE}\r\nSubject: fetch ${i}\r\nMessage-ID: <fetch${i}@remote.test>\r\n`;
  switch (i % 5) {
    case 1:
      return `${head}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln ✓\r\n${'x'.repeat(998)}\r\nend.\r\n`;
    case 2:
      return `${head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.alloc(3000, i).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--b--\r\n`;
    case 3:
      return `${head}\r\n.\r\n..two dots\r\nFrom the start of a line\r\n>From quoted\r\n\r\n\r\ntrailing blank lines above\r\n`;
    default:
      return `${head}\r\nbody of ${i}\r\n`;
  }
}

describe('fetchmail over STARTTLS', { skip: toolSkip('fetchmail', 'openssl') }, () => {
  const tmp = tempDir('fmail-fetchmail-');
  const out = path.join(tmp.dir, 'out');
  const rc = path.join(tmp.dir, 'fetchmailrc');
  let s: Stack;
  let mailboxd: IpcClient;
  /** What mailboxd holds in alice's INBOX, by UID. */
  const stored: Buffer[] = [];

  before(async () => {
    const ca = makeTestCa(tmp.dir, [NAME]);
    s = await startStack({ allow_plaintext_loopback: false }, { cert: path.join(tmp.dir, 'server.pem'), key: path.join(tmp.dir, 'server.key') });
    mailboxd = ipcClient(s.config, 'mailboxd');
    for (let i = 1; i <= COUNT; i++) await s.deliver(ALICE, message(i));
    for (let uid = 1; uid <= COUNT; uid++) {
      const r = await mailboxd.requestRaw('fetch', [ALICE, 'INBOX', String(uid)]);
      assert.ok(r.reply.ok, r.reply.params.join(' '));
      stored.push(r.data!);
    }
    mkdirSync(out);
    // One file per message: the MDA's shell numbers them by its own PID.
    writeFileSync(
      rc,
      [
        'set no syslog',
        `poll ${NAME} port ${s.port} protocol IMAP`,
        `  user "${ALICE}" password "${ALICE_PW}"`,
        `  sslproto "tls1.2+" sslcertck sslcertfile "${ca.caFile}"`,
        `  mda "cat > ${out}/$$.eml"`,
        '  no stripcr no rewrite',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  });
  after(async () => {
    mailboxd?.close();
    await s?.close();
    tmp.cleanup();
  });

  test(`fetches ${COUNT} messages byte-exact, deletes them, and a second run finds none`, async () => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp.dir, FETCHMAILHOME: tmp.dir };
    const t0 = Date.now();
    // --invisible: no Received header of fetchmail's own, so the bytes are the server's.
    const r = await fetchmail(['-f', rc, '-v', '--invisible', '--idfile', path.join(tmp.dir, 'ids')], env);
    const ms = Date.now() - t0;
    assert.equal(r.status, 0, r.out.slice(-3000));
    // The login went over TLS (imapd refuses it before: LOGINDISABLED), the certificate
    // checked against the CA.
    assert.match(r.out, /IMAP> \S+ STARTTLS/);
    assert.doesNotMatch(r.out, /certificate verification failed|Server certificate verification error/i, r.out.slice(-3000));
    assert.match(r.out, new RegExp(`${COUNT} messages? for ${ALICE.replace('.', '\\.')}`));

    const files = readdirSync(out);
    assert.equal(files.length, COUNT, r.out.slice(-3000));
    const got = files.map((f) => readFileSync(path.join(out, f)).toString('hex')).sort();
    const want = stored.map((b) => b.toString('hex')).sort();
    for (let i = 0; i < COUNT; i++) assert.equal(got[i], want[i], `message ${i + 1} of ${COUNT} (sorted) differs`);
    console.log(`fetchmail: ${COUNT} messages over STARTTLS in ${ms} ms`);

    // Flagged \Deleted and expunged: INBOX is empty, and a second run has nothing to fetch.
    const index = await mailboxd.requestList('index', [ALICE, 'INBOX']);
    assert.equal(index.items.length, 0);
    const again = await fetchmail(['-f', rc, '--invisible', '--idfile', path.join(tmp.dir, 'ids')], env);
    assert.equal(again.status, 1, again.out);
    assert.equal(readdirSync(out).length, COUNT);
  });
});
