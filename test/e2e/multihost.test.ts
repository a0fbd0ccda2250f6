// Several hosts, no shared disk (issue 18): four hosts as network namespaces (multihost-net.ts;
// distinct loopback addresses where namespaces cannot be made), each with its own data folder:
//   mx1, mx2  smtpd + pop3d            (queue_colocated = false: every message goes with `put`)
//   core      queued on PostgreSQL, router, smtp-out (queue_colocated = false: bytes by `get`)
//   store     authd + mailboxd
//   store2    mailboxd only: bob's mailbox host (`mailhost=` in the users file, issue 18)
// IPC between hosts over TCP with a shared secret. Mail sent to both MX hosts (small, 8-bit,
// dot-lines, one of 1.5 MiB) is delivered once and read back byte-exact over POP3 from both MX
// hosts. FMAIL_TEST_NO_NETNS=1 forces the loopback layout.
// PostgreSQL (test/helpers/postgres.ts) is reached over its Unix socket: the database is the
// core host's external component, not a folder the FancyMail hosts share.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { fmailAsync } from '../helpers/fmail-process.js';
import { onCrlfLines } from '../helpers/lines.js';
import { NO_POSTGRES, type TestPostgres, startPostgres } from '../helpers/postgres.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { type Net, makeNet, stopAll } from './multihost-net.js';

const SECRET = 'multihost-test-secret-0123456789';
const PASSWORD = 'pw-alice-1';

function hostConfig(net: Net, name: string, pgUrl: string): string {
  const h = net.hosts.get(name)!;
  const at = (host: string, port: number): string => `"socket://${net.hosts.get(host)!.addr}:${port}"`;
  return [
    `data_dir = ${JSON.stringify(h.dir)}`,
    `hostname = "${name}.fancymail.test"`,
    '[log]',
    'level = "info"',
    '[metrics]',
    'listen = ""',
    '[ipc]',
    `secret = "${SECRET}"`,
    `authd = ${at('store', 14100)}`,
    // store2's mailboxd listens on its own address; everyone else's default mailboxd is store's.
    `mailboxd = ${at(name === 'store2' ? 'store2' : 'store', 14103)}`,
    `queued = ${at('core', 14101)}`,
    `smtp_out = ${at('core', 14102)}`,
    `router = ${at('core', 14104)}`,
    `imapd = "socket://${h.addr}:14105"`,
    '[queued]',
    'backend = "postgres"',
    `postgres_url = ${JSON.stringify(pgUrl)}`,
    '[smtpd]',
    `host = "${h.addr}"`,
    'port = 2525',
    'submission_port = -1',
    'submissions_port = -1',
    'queue_colocated = false',
    '[pop3d]',
    `host = "${h.addr}"`,
    'port = 1110',
    'pop3s_port = -1',
    'allow_plaintext_auth = true',
    '[router]',
    'queue_colocated = false',
    'retry_s = 2',
    'max_retry_s = 5',
    '[smtp_out]',
    'queue_colocated = false',
    'first_retry_s = 2',
    'max_backoff_s = 5',
    '[mail_auth]',
    'check = false',
    '',
  ].join('\n');
}

/** smtpSend - one raw SMTP transaction (bytes dot-stuffed here, so they arrive exactly). */
async function smtpSend(host: string, port: number, rcpt: string, msg: Buffer): Promise<void> {
  const sock = net.connect(port, host);
  sock.setTimeout(30_000, () => sock.destroy(new Error('smtp timeout')));
  const replies: string[] = [];
  const waiters: Array<() => void> = [];
  onCrlfLines(sock, (line) => {
    if (/^\d{3} /.test(line)) {
      replies.push(line);
      waiters.shift()?.();
    }
  });
  let failed: Error | null = null;
  sock.on('error', (e) => {
    failed = e;
    for (const w of waiters.splice(0)) w();
  });
  const expect = async (code: string): Promise<void> => {
    if (replies.length === 0) await new Promise<void>((r) => waiters.push(r));
    if (failed) throw failed;
    const got = replies.shift()!;
    if (!got.startsWith(code)) throw new Error(`expected ${code}, got ${got}`);
  };
  await expect('220');
  sock.write('EHLO client.test\r\n');
  await expect('250');
  sock.write('MAIL FROM:<sender@outside.test>\r\n');
  await expect('250');
  sock.write(`RCPT TO:<${rcpt}>\r\n`);
  await expect('250');
  sock.write('DATA\r\n');
  await expect('354');
  const stuffed = Buffer.from(msg.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
  sock.write(stuffed);
  sock.write('.\r\n');
  await expect('250');
  sock.end('QUIT\r\n');
}

/** pop3All - every message of USER via POP3 at HOST, raw bytes (dot-unstuffed). */
async function pop3All(host: string, port: number, user: string, pass: string): Promise<Buffer[]> {
  const sock = net.connect(port, host);
  sock.setTimeout(30_000, () => sock.destroy(new Error('pop3 timeout')));
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  let failed: Error | null = null;
  onCrlfLines(sock, (l) => {
    lines.push(l);
    wake?.();
  });
  sock.on('error', (e) => {
    failed = e;
    wake?.();
  });
  const line = async (): Promise<string> => {
    while (lines.length === 0) {
      if (failed) throw failed;
      await new Promise<void>((r) => (wake = r));
    }
    return lines.shift()!;
  };
  const ok = async (cmd: string | null): Promise<string> => {
    if (cmd) sock.write(cmd + '\r\n');
    const l = await line();
    if (!l.startsWith('+OK')) throw new Error(`${cmd}: ${l}`);
    return l;
  };
  try {
    await ok(null);
    await ok(`USER ${user}`);
    await ok(`PASS ${pass}`);
    const count = Number((await ok('STAT')).split(' ')[1]);
    const out: Buffer[] = [];
    for (let i = 1; i <= count; i++) {
      await ok(`RETR ${i}`);
      const parts: string[] = [];
      for (;;) {
        const l = await line();
        if (l === '.') break;
        parts.push(l.startsWith('.') ? l.slice(1) : l);
      }
      out.push(Buffer.from(parts.map((p) => p + '\r\n').join(''), 'latin1'));
    }
    sock.end('QUIT\r\n');
    return out;
  } finally {
    sock.destroy();
  }
}

function message(token: string, body: string): Buffer {
  return Buffer.from(`From: sender@outside.test\r\nTo: alice@example.test\r\nSubject: ${token}\r\nMessage-ID: <${token}@outside.test>\r\n\r\n${body}`, 'latin1');
}

describe('several hosts, no shared disk', { skip: NO_POSTGRES }, () => {
  const tmp = tempDir('fmail-multihost-');
  let pg: TestPostgres;
  let netw: Net;

  before(async () => {
    pg = await startPostgres();
    netw = makeNet(tmp.dir, ['mx1', 'mx2', 'core', 'store', 'store2']);
    await pg.createDatabase('fmail');
    const pgUrl = pg.socketUrl('fmail');
    const cfg = (name: string): string => {
      const file = path.join(netw.hosts.get(name)!.dir, 'fmail.toml');
      writeFileSync(file, hostConfig(netw, name, pgUrl));
      return file;
    };
    const store = cfg('store');
    const add = await fmailAsync(['user', 'add', 'alice@example.test', '--password-stdin', '-c', store], PASSWORD + '\n');
    assert.equal(add.status, 0, add.stderr);
    const addBob = await fmailAsync(['user', 'add', 'bob@example.test', '--password-stdin', '-c', store], PASSWORD + '\n');
    assert.equal(addBob.status, 0, addBob.stderr);
    // Dovecot's extra fields are the 8th field: bob's mail lives on store2.
    const usersFile = path.join(netw.hosts.get('store')!.dir, 'users');
    const bobHost = `socket://${netw.hosts.get('store2')!.addr}:14103`;
    writeFileSync(usersFile, readFileSync(usersFile, 'utf8').replace(/^(bob@example\.test:.*)$/m, `$1mailhost=${bobHost}`));
    const core = cfg('core');
    const mig = await fmailAsync(['db', 'migrate', '-c', core]);
    assert.equal(mig.status, 0, mig.stderr);
    await netw.start('store', ['authd', 'mailboxd'], store);
    await netw.start('store2', ['mailboxd'], cfg('store2'));
    await netw.start('core', ['queued', 'smtp-out', 'router'], core);
    await netw.start('mx1', ['smtpd', 'pop3d'], cfg('mx1'));
    await netw.start('mx2', ['smtpd', 'pop3d'], cfg('mx2'));
  });

  after(async () => {
    if (netw) {
      await stopAll(netw).catch(() => undefined);
      netw.cleanup();
    }
    await pg?.cleanup();
    tmp.cleanup();
  });

  test("a user's mail goes to its mailbox host (users file mailhost=), read back over POP3", { timeout: 120_000 }, async () => {
    const mx1 = netw.hosts.get('mx1')!.addr;
    const mx2 = netw.hosts.get('mx2')!.addr;
    const sent = [0, 1, 2, 3].map((i) => Buffer.from(`From: sender@outside.test\r\nTo: bob@example.test\r\nSubject: bob-${i}\r\n\r\nfor bob ${i}\r\n`, 'latin1'));
    await Promise.all(sent.map((m, i) => smtpSend(i % 2 ? mx2 : mx1, 2525, 'bob@example.test', m)));
    const got = await waitFor(
      async () => {
        const all = await pop3All(mx2, 1110, 'bob@example.test', PASSWORD);
        return all.length >= sent.length ? all : null;
      },
      60_000,
      200,
    );
    assert.equal(got.length, sent.length);
    for (const m of sent) assert.equal(got.filter((g) => g.subarray(g.length - m.length).equals(m)).length, 1);
    const maildirs = (host: string): string[] => {
      const d = path.join(netw.hosts.get(host)!.dir, 'mail');
      return existsSync(d) ? readdirSync(d) : [];
    };
    assert.ok(maildirs('store2').some((u) => u.startsWith('bob')), `bob's Maildir on store2: ${maildirs('store2').join(',')}`);
    assert.ok(!maildirs('store').some((u) => u.startsWith('bob')), `no Maildir of bob on store: ${maildirs('store').join(',')}`);
  });

  test('mail to both MX hosts is delivered once, byte-exact over POP3 from either', { timeout: 120_000 }, async (t) => {
    t.diagnostic(`hosts on ${netw.kind}: ${[...netw.hosts.values()].map((h) => `${h.name}=${h.addr}`).join(' ')}`);
    const mx1 = netw.hosts.get('mx1')!.addr;
    const mx2 = netw.hosts.get('mx2')!.addr;
    const sent = new Map<string, Buffer>();
    const eightBit = Buffer.from('caf\xe9 \xfc\r\n', 'latin1').toString('latin1');
    for (let i = 0; i < 20; i++) {
      const token = `mh-${i}`;
      const msg = message(token, `line one\r\n.a dot line\r\n${i % 3 === 0 ? eightBit : ''}end ${i}\r\n`);
      sent.set(token, msg);
    }
    // Over smtpd's 1 MiB put limit of a co-located queue: still one `put` (no slot file to write).
    const big = message('mh-big', `${'x'.repeat(998)}\r\n`.repeat(1500));
    sent.set('mh-big', big);
    await Promise.all([...sent].map(([token, msg], i) => smtpSend(i % 2 ? mx2 : mx1, 2525, 'alice@example.test', msg).then(() => token)));

    const got = await waitFor(
      async () => {
        const all = await pop3All(mx1, 1110, 'alice@example.test', PASSWORD);
        return all.length >= sent.size ? all : null;
      },
      60_000,
      200,
    );
    assert.equal(got.length, sent.size, 'each message once');
    for (const [token, msg] of sent) {
      const copies = got.filter((m) => m.includes(Buffer.from(`Subject: ${token}\r\n`)));
      assert.equal(copies.length, 1, `${token} delivered once`);
      assert.ok(copies[0]!.subarray(copies[0]!.length - msg.length).equals(msg), `${token} byte-exact`);
    }
    // The same mailbox through the other MX host's pop3d.
    const again = await pop3All(mx2, 1110, 'alice@example.test', PASSWORD);
    assert.equal(again.length, sent.size);

    // No host but core has a queue folder: nobody wrote into queued's spool from afar.
    // The router read the messages through `get` (its copy folder), not in queued's spool.
    assert.ok(existsSync(path.join(netw.hosts.get('core')!.dir, 'router', 'queue-copies')));
    for (const name of ['mx1', 'mx2', 'store', 'store2']) assert.equal(existsSync(path.join(netw.hosts.get(name)!.dir, 'queue')), false, `${name} has no queue folder`);
  });
});
