// The layout of the multi-host tests (multihost.test.ts, multihost-crash.test.ts): hosts'
// configurations, users, schema, servers started per host; raw SMTP and POP3 clients.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { fmailAsync } from '../helpers/fmail-process.js';
import { onCrlfLines } from '../helpers/lines.js';
import { type TestPostgres } from '../helpers/postgres.js';
import { type Net, makeNet } from './multihost-net.js';

export const HOSTS = ['mx1', 'mx2', 'core', 'store', 'store2'];
/** What each host runs. */
export const SERVERS: Record<string, string[]> = {
  store: ['authd', 'mailboxd'],
  store2: ['mailboxd'],
  core: ['queued', 'smtp-out', 'router'],
  mx1: ['smtpd', 'pop3d'],
  mx2: ['smtpd', 'pop3d'],
};

const SECRET = 'multihost-test-secret-0123456789';
export const PASSWORD = 'pw-alice-1';

function hostConfig(net: Net, name: string, pgUrl: string, extra: string): string {
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
    // A dead consumer's leases come back soon (the crash test kills hosts).
    'lease_s = 10',
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
    extra,
    '',
  ].join('\n');
}

/** smtpSend - one raw SMTP transaction (bytes dot-stuffed here, so they arrive exactly); the final 250 line. */
export async function smtpSend(host: string, port: number, rcpt: string, msg: Buffer): Promise<string> {
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
  const fail = (e: Error): void => {
    failed ??= e;
    for (const w of waiters.splice(0)) w();
  };
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('connection closed')));
  const expect = async (code: string): Promise<string> => {
    if (replies.length === 0) await new Promise<void>((r) => waiters.push(r));
    if (failed) throw failed;
    const got = replies.shift()!;
    if (!got.startsWith(code)) throw new Error(`expected ${code}, got ${got}`);
    return got;
  };
  try {
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
    return await expect('250');
  } finally {
    sock.end('QUIT\r\n');
    sock.destroySoon();
  }
}

/** pop3All - every message of USER via POP3 at HOST, raw bytes (dot-unstuffed). */
export async function pop3All(host: string, port: number, user: string, pass: string): Promise<Buffer[]> {
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

export function message(token: string, body: string): Buffer {
  return Buffer.from(`From: sender@outside.test\r\nTo: alice@example.test\r\nSubject: ${token}\r\nMessage-ID: <${token}@outside.test>\r\n\r\n${body}`, 'latin1');
}

/** startLayout - the hosts under ROOT on PG, users alice (store) and bob (store2), every server up. */
export async function startLayout(root: string, pg: TestPostgres, extraToml = ''): Promise<{ netw: Net; configs: Map<string, string> }> {
  const netw = makeNet(root, HOSTS);
  const configs = new Map<string, string>();
  try {
    await pg.createDatabase('fmail');
    const pgUrl = pg.socketUrl('fmail');
    for (const name of HOSTS) {
      const file = path.join(netw.hosts.get(name)!.dir, 'fmail.toml');
      writeFileSync(file, hostConfig(netw, name, pgUrl, extraToml));
      configs.set(name, file);
    }
    const store = configs.get('store')!;
    for (const user of ['alice@example.test', 'bob@example.test']) {
      const add = await fmailAsync(['user', 'add', user, '--password-stdin', '-c', store], PASSWORD + '\n');
      assert.equal(add.status, 0, add.stderr);
    }
    // Dovecot's extra fields are the 8th field: bob's mail lives on store2.
    const usersFile = path.join(netw.hosts.get('store')!.dir, 'users');
    const bobHost = `socket://${netw.hosts.get('store2')!.addr}:14103`;
    writeFileSync(usersFile, readFileSync(usersFile, 'utf8').replace(/^(bob@example\.test:.*)$/m, `$1mailhost=${bobHost}`));
    const mig = await fmailAsync(['db', 'migrate', '-c', configs.get('core')!]);
    assert.equal(mig.status, 0, mig.stderr);
    for (const name of ['store', 'store2', 'core', 'mx1', 'mx2']) await netw.start(name, SERVERS[name]!, configs.get(name)!);
  } catch (err) {
    netw.cleanup();
    throw err;
  }
  return { netw, configs };
}
