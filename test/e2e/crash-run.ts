// Crash safety of the whole system: messages sent over 10 SMTP sessions while FancyMail is
// killed with SIGKILL 15 times and restarted at random moments — first the all-in-one process,
// then one server process at a time when every server runs alone. Every 10th message also goes
// to a remote recipient (submission with AUTH, relayed by smtp-out to a sink in this process).
// Afterwards every message that got `250` must be in the Maildir and at the sink:
//   lost                0 (asserted)
//   local duplicates    0 (asserted): the same queue id stored twice — exactly-once local
//                       delivery (the router sends the qid with `store`, mailboxd keeps one)
//   client resends      reported: a message queued whose 250 the client never saw (the kill
//                       came first) is sent again and queued under a new qid; no server can
//                       tell it from new mail (Postfix has the same window)
//   remote duplicates   reported: SMTP is at-least-once (a kill between the remote 250 and
//                       our `done` sends it again)
//
// CRASH_MESSAGES (default 5000) sets the load, CRASH_SEED the random seed (printed). The two
// runs are two test files (crash.test.ts, crash-separate.test.ts): each fits the runner's
// per-file timeout on a loaded machine.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import nodemailer from 'nodemailer';

import { type FmailProcess, type FmailSetup, fmailAsync, fmailSync, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { onCrlfLines } from '../helpers/lines.js';
import { tempDir } from '../helpers/tmp.js';
import { type Sink, startSink } from '../router/harness.js';

const MESSAGES = Number(process.env.CRASH_MESSAGES ?? 5000);
const KILLS = 15;
const SESSIONS = 10;
const USER = 'crash@fancymail.test';
const REMOTE_EVERY = 10;

/** mulberry32 - a small seeded PRNG, so a failing run can be replayed with CRASH_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Submission with AUTH over STARTTLS for the messages that also go to a remote recipient. */
type Submitter = (token: string) => Promise<void>;
function submitter(setup: FmailSetup): { submit: Submitter; close(): void } {
  // One pooled connection per SMTP session: one TLS handshake and AUTH, not one per message.
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: 1,
    host: '127.0.0.1',
    port: setup.ports.submission,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: USER, pass: 'pw' },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  return {
    submit: async (token) => {
      // nodemailer resolves once ANY recipient was accepted: a RCPT refused with 4xx while a
      // server was down (authd, say) is in `rejected`, and that message was not acknowledged
      // for it. It is sent again, as a client would (the local copy then counts as a resend).
      const info = await transport.sendMail({
        envelope: { from: USER, to: [USER, `${token}@sink.test`] },
        raw: `From: <${USER}>\r\nSubject: crash ${token}\r\nX-Token: ${token}\r\n\r\nbody ${token}\r\n${'x'.repeat(200)}\r\n`,
      });
      if (info.rejected.length > 0) throw new Error(`refused for ${info.rejected.join(', ')}: ${info.response}`);
    },
    close: () => transport.close(),
  };
}

/** One SMTP session that sends messages until the list is empty, reconnecting after crashes. */
async function smtpSession(setup: FmailSetup, next: () => string | undefined, acked: Set<string>, deadline: number): Promise<void> {
  const sub = submitter(setup);
  try {
    await smtpLoop(setup, sub.submit, next, acked, deadline);
  } finally {
    sub.close();
  }
}

async function smtpLoop(setup: FmailSetup, submitRemote: Submitter, next: () => string | undefined, acked: Set<string>, deadline: number): Promise<void> {
  let pending: string | undefined;
  while (Date.now() < deadline) {
    const token = pending ?? next();
    if (!token) return;
    pending = token;
    try {
      if (isRemote(token)) {
        await submitRemote(token);
        acked.add(token);
        pending = undefined;
        continue;
      }
      await withConnection(setup.ports.smtp, async (cmd) => {
        await cmd(null, 220);
        await cmd('EHLO crash.test', 250);
        for (;;) {
          const t = pending ?? next();
          if (!t) return;
          pending = t;
          if (isRemote(t)) return; // sent by submission on the next turn
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
  const waiters: Array<(line: string) => void> = [];
  let failure: Error | null = null;
  const fail = (err: Error): void => {
    failure = err;
    for (const w of waiters.splice(0)) w('');
  };
  onCrlfLines(sock, (line) => {
    if (/^\d{3} /.test(line)) waiters.shift()?.(line);
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

const isRemote = (token: string): boolean => Number(token.slice(token.lastIndexOf('-') + 1)) % REMOTE_EVERY === 0;

/** deliveredTokens - token -> the queue ids (from our Received line) of its copies in the Maildir. */
function deliveredTokens(setup: FmailSetup): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const base = path.join(setup.dir, 'mail', USER);
  for (const sub of ['new', 'cur']) {
    let files: string[] = [];
    try {
      files = readdirSync(path.join(base, sub));
    } catch {
      continue;
    }
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(path.join(base, sub, f), 'utf8');
      } catch {
        continue; // moved new/ -> cur/ while we read
      }
      const m = /X-Token: (\S+)/.exec(text);
      const qid = /\bwith E?SMTPS?A? id ([0-9A-Z]+)/.exec(text)?.[1] ?? '?';
      if (m) found.set(m[1]!, [...(found.get(m[1]!) ?? []), qid]);
    }
  }
  return found;
}

/** remoteTokens - token -> the queue ids of the copies the remote sink received. */
function remoteTokens(sink: Sink): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const m of sink.messages) {
    const text = m.data.toString('latin1');
    const t = /X-Token: (\S+)/.exec(text)?.[1];
    const qid = /\bwith E?SMTPS?A? id ([0-9A-Z]+)/.exec(text)?.[1] ?? '?';
    if (t) found.set(t, [...(found.get(t) ?? []), qid]);
  }
  return found;
}

/** copies - beyond one per (token, qid): duplicates; beyond one qid per token: client resends. */
function copies(found: Map<string, string[]>): { duplicates: number; resends: number } {
  let duplicates = 0;
  let resends = 0;
  for (const qids of found.values()) {
    const distinct = new Set(qids).size;
    duplicates += qids.length - distinct;
    resends += distinct - 1;
  }
  return { duplicates, resends };
}

export async function crashRun(label: string, mode: 'all-in-one' | 'separate'): Promise<void> {
  const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = prng(seed);
  console.log(`# crash ${label}: seed ${seed} (CRASH_SEED=${seed} replays the kill schedule)`);
  const tmp = tempDir('fmail-crash-');
  const servers = ['authd', 'queued', 'mailboxd', 'smtp-out', 'router', 'smtpd', 'pop3d'];
  const procs = new Map<string, FmailProcess>();
  let keep = false;
  const sink = await startSink();
  try {
    // Short retries: mail deferred while a server was down goes again soon (and is flushed below).
    const setup = await writeFmailConfig(
      tmp.dir,
      `[router]\nretry_s = 2\nmax_retry_s = 5\n[smtp_out]\nfirst_retry_s = 2\nmax_backoff_s = 5\ndead_destination_s = 1\n[smtp_out.routes]\n"sink.test" = "127.0.0.1:${sink.port}"\n`,
    );
    assert.equal(fmailSync(['user', 'add', USER, '--password-stdin', '-c', setup.configFile], 'pw\n').status, 0);
    const start = async (name: string): Promise<void> => {
      procs.set(name, await startFmail(setup, name === 'all' ? [] : [name]));
    };
    if (mode === 'all-in-one') await start('all');
    else for (const s of servers) await start(s);

    const tokens = Array.from({ length: MESSAGES }, (_, i) => `${label}-${i}`);
    let cursor = 0;
    const acked = new Set<string>();
    const t0 = Date.now();
    // Generous: a loaded 2-core machine sends ~20 msg/s while being killed every 1.5 s.
    const deadline = t0 + 330_000;
    const sending = Promise.all(Array.from({ length: SESSIONS }, () => smtpSession(setup, () => tokens[cursor++], acked, deadline)));
    // All 15 kills happen, while mail is sent and (if sending ends first) while it drains.
    let kills = 0;
    while (kills < KILLS && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500 + random() * 2000));
      const victim = mode === 'all-in-one' ? 'all' : servers[Math.floor(random() * servers.length)]!;
      const exit = procs.get(victim)!.stop('SIGKILL');
      const code = await exit;
      // Not killed by us: it had exited on its own (its last output says why).
      assert.ok(procs.get(victim)!.child.signalCode === 'SIGKILL' || code === null, `${victim} was killed, not exited with ${code}: ${procs.get(victim)!.output.join('\n').slice(-1500)}`);
      kills++;
      await start(victim);
    }
    await sending;
    const sentAt = Date.now();
    assert.equal(kills, KILLS, `all ${KILLS} SIGKILLs happened`);
    assert.equal(acked.size, MESSAGES, `every message was eventually accepted (${acked.size}/${MESSAGES})`);
    const remoteAcked = [...acked].filter(isRemote);

    // Let the system drain, then count. Mail whose delivery failed while a server was down
    // waits deferred; flush it as an administrator would (`fmail queue flush`, like
    // `postqueue -f`) rather than wait out the back-off.
    let delivered = deliveredTokens(setup);
    let remote = remoteTokens(sink);
    const missing = (): boolean => [...acked].some((t) => !delivered.has(t)) || remoteAcked.some((t) => !remote.has(t));
    const drainDeadline = Date.now() + 180_000;
    let lastFlush = 0;
    while (missing() && Date.now() < drainDeadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (Date.now() - lastFlush > 5000) {
        lastFlush = Date.now();
        await fmailAsync(['queue', 'flush', '-c', setup.configFile]);
      }
      delivered = deliveredTokens(setup);
      remote = remoteTokens(sink);
    }
    const lost = [...acked].filter((t) => !delivered.has(t));
    const lostRemote = remoteAcked.filter((t) => !remote.has(t));
    const local = copies(delivered);
    const localDuplicates = local.duplicates;
    const far = copies(remote);
    console.log(
      `# crash ${label}: ${MESSAGES} messages (${remoteAcked.length} also remote), ${kills} SIGKILLs, seed ${seed}, ` +
        `sent in ${((sentAt - t0) / 1000).toFixed(0)} s, drained in ${((Date.now() - sentAt) / 1000).toFixed(0)} s: ` +
        `lost ${lost.length} local / ${lostRemote.length} remote; local duplicates ${localDuplicates}; ` +
        `remote duplicates ${far.duplicates}; client resends (never acknowledged, sent again) ${local.resends}`,
    );
    let queue = '';
    if (lost.length + lostRemote.length) {
      queue = (await fmailAsync(['queue', 'list', '-c', setup.configFile])).stdout;
      const qids = [...lost, ...lostRemote].flatMap((t) => delivered.get(t) ?? []).filter((q) => q !== '?');
      // The servers' log (DATA/fmail.log): every line of the lost messages' qids, and errors.
      let log: string[] = [];
      try {
        log = readFileSync(path.join(setup.dir, 'fmail.log'), 'utf8').split('\n');
      } catch {
        // no log written
      }
      const trail = log.filter((line) => qids.some((q) => line.includes(q)));
      const errors = log.filter((line) => /"level":(50|60)/.test(line));
      queue += `\nlog lines of qids ${qids.join(', ')}:\n${trail.slice(0, 100).join('\n')}\nthe last errors:\n${errors.slice(-20).join('\n')}`;
      if (process.env.CRASH_KEEP) {
        keep = true;
        queue += `\ndata kept in ${setup.dir}`;
      }
    }
    assert.equal(lost.length, 0, `lost: ${lost.slice(0, 10).join(', ')}\nqueue:\n${queue}`);
    assert.equal(lostRemote.length, 0, `lost remote: ${lostRemote.slice(0, 10).join(', ')}\nqueue:\n${queue}`);
    const twice = [...delivered.entries()].filter(([, q]) => q.length > new Set(q).size).slice(0, 5);
    assert.equal(localDuplicates, 0, `stored twice under one qid: ${JSON.stringify(twice)}`);
  } finally {
    for (const p of procs.values()) await p.stop('SIGKILL');
    await sink.close();
    if (!keep) tmp.cleanup();
  }
}

