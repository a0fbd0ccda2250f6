// Crash safety of the whole system: messages sent over 10 SMTP sessions while FancyMail is
// killed with SIGKILL and restarted at random moments — first the all-in-one process, then
// one server process at a time when every server runs alone. Afterwards every message that
// got `250` must be in the Maildir: losses must be 0; duplicates (at-least-once) are reported.
//
// CRASH_MESSAGES (default 5000) sets the load.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { type FmailProcess, type FmailSetup, fmailAsync, fmailSync, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { tempDir } from '../helpers/tmp.js';

const MESSAGES = Number(process.env.CRASH_MESSAGES ?? 5000);
const SESSIONS = 10;
const USER = 'crash@fancymail.test';

/** One SMTP session that sends messages until the list is empty, reconnecting after crashes. */
async function smtpSession(port: number, next: () => string | undefined, acked: Set<string>, deadline: number): Promise<void> {
  let pending: string | undefined;
  while (Date.now() < deadline) {
    const token = pending ?? next();
    if (!token) return;
    pending = token;
    try {
      await withConnection(port, async (cmd) => {
        await cmd(null, 220);
        await cmd('EHLO crash.test', 250);
        for (;;) {
          const t = pending ?? next();
          if (!t) return;
          pending = t;
          await cmd(`MAIL FROM:<sender@remote.test>`, 250);
          await cmd(`RCPT TO:<${USER}>`, 250);
          await cmd('DATA', 354);
          await cmd(`Subject: crash ${t}\r\nX-Token: ${t}\r\n\r\nbody ${t}\r\n${'x'.repeat(200)}\r\n.`, 250);
          acked.add(t);
          pending = undefined;
        }
      });
    } catch {
      // The server died mid-session: whatever was not acknowledged is sent again.
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function withConnection(port: number, body: (cmd: (line: string | null, want: number) => Promise<void>) => Promise<void>): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  sock.setTimeout(20_000, () => sock.destroy(new Error('timeout')));
  let buf = '';
  const waiters: Array<(line: string) => void> = [];
  let failure: Error | null = null;
  const fail = (err: Error): void => {
    failure = err;
    for (const w of waiters.splice(0)) w('');
  };
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    let i: number;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (/^\d{3} /.test(line)) waiters.shift()?.(line);
    }
  });
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('closed')));
  const cmd = async (line: string | null, want: number): Promise<void> => {
    if (failure) throw failure;
    const reply = new Promise<string>((r) => waiters.push(r));
    if (line !== null) sock.write(line + '\r\n');
    const got = await reply;
    if (failure) throw failure;
    if (!got.startsWith(String(want))) throw new Error(`expected ${want}, got ${got}`);
  };
  try {
    await body(cmd);
    sock.end('QUIT\r\n');
  } finally {
    sock.destroy();
  }
}

function deliveredTokens(setup: FmailSetup): Map<string, number> {
  const counts = new Map<string, number>();
  const base = path.join(setup.dir, 'mail', USER);
  for (const sub of ['new', 'cur']) {
    let files: string[] = [];
    try {
      files = readdirSync(path.join(base, sub));
    } catch {
      continue;
    }
    for (const f of files) {
      const m = /X-Token: (\S+)/.exec(readFileSync(path.join(base, sub, f), 'utf8'));
      if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    }
  }
  return counts;
}

async function crashRun(label: string, mode: 'all-in-one' | 'separate'): Promise<void> {
  const tmp = tempDir('fmail-crash-');
  const servers = ['authd', 'queued', 'mailboxd', 'smtp-out', 'router', 'smtpd', 'pop3d'];
  const procs = new Map<string, FmailProcess>();
  try {
    const setup = await writeFmailConfig(tmp.dir, '[router]\n');
    assert.equal(fmailSync(['user', 'add', USER, '--password-stdin', '-c', setup.configFile], 'pw\n').status, 0);
    const start = async (name: string): Promise<void> => {
      procs.set(name, await startFmail(setup, name === 'all' ? [] : [name]));
    };
    if (mode === 'all-in-one') await start('all');
    else for (const s of servers) await start(s);

    const tokens = Array.from({ length: MESSAGES }, (_, i) => `${label}-${i}`);
    let cursor = 0;
    const acked = new Set<string>();
    const deadline = Date.now() + 240_000;
    const sending = Promise.all(
      Array.from({ length: SESSIONS }, () => smtpSession(setup.ports.smtp, () => tokens[cursor++], acked, deadline)),
    );
    let kills = 0;
    let done = false;
    void sending.then(() => (done = true));
    while (!done && kills < 15 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 2000));
      if (done) break;
      const victim = mode === 'all-in-one' ? 'all' : servers[Math.floor(Math.random() * servers.length)]!;
      await procs.get(victim)!.stop('SIGKILL');
      kills++;
      await start(victim);
    }
    await sending;
    assert.equal(acked.size, MESSAGES, `every message was eventually accepted (${acked.size}/${MESSAGES})`);

    // Let the system drain, then count. Mail whose delivery failed while a server was down
    // waits deferred (first retry after a minute); flush it as an administrator would
    // (`fmail queue flush`, like `postqueue -f`) rather than wait out the back-off.
    let delivered = deliveredTokens(setup);
    const drainDeadline = Date.now() + 180_000;
    let lastFlush = 0;
    while ([...acked].some((t) => !delivered.has(t)) && Date.now() < drainDeadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (Date.now() - lastFlush > 5000) {
        lastFlush = Date.now();
        await fmailAsync(['queue', 'flush', '-c', setup.configFile]);
      }
      delivered = deliveredTokens(setup);
    }
    const lost = [...acked].filter((t) => !delivered.has(t));
    const duplicates = [...delivered.values()].filter((n) => n > 1).reduce((a, n) => a + n - 1, 0);
    console.log(`# crash ${label}: ${MESSAGES} messages, ${kills} SIGKILLs, lost ${lost.length}, duplicates ${duplicates}`);
    const queue = lost.length ? (await fmailAsync(['queue', 'list', '-c', setup.configFile])).stdout : '';
    assert.equal(lost.length, 0, `lost: ${lost.slice(0, 10).join(', ')}\nqueue:\n${queue}`);
  } finally {
    for (const p of procs.values()) await p.stop('SIGKILL');
    tmp.cleanup();
  }
}

describe('crash safety under SIGKILL', () => {
  after(() => {});
  test('all-in-one process killed and restarted at random moments', { timeout: 300_000 }, async () => {
    await crashRun('aio', 'all-in-one');
  });
  test('each server in its own process, one killed at a time', { timeout: 300_000 }, async () => {
    await crashRun('sep', 'separate');
  });
});
