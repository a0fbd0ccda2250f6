// End to end, side by side with Postfix: the same smtp-source load (4 KiB messages, 20
// sessions, 10,000 messages) into FancyMail and into a private Postfix instance, each timed
// from the first connection until the last message is in the recipient's Maildir. Durability
// is on in both (FancyMail fsyncs queue and Maildir; Postfix fsyncs its queue files and Maildir).
//
// BENCH_MESSAGES=2000 for a shorter run. Needs root and the Debian postfix package.

import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startFmail, writeFmailConfig } from '../test/helpers/fmail-process.js';
import { postfixAvailable, startPostfix } from '../test/helpers/postfix.js';
import { freePort, tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000);
const SESSIONS = 20;
const SIZE = 4096;
const USER = 'u1@bench.test';

function countFiles(dirs: string[]): number {
  let n = 0;
  for (const d of dirs) {
    try {
      n += readdirSync(d).length;
    } catch {
      // not created yet
    }
  }
  return n;
}

async function waitForCount(dirs: string[], want: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (countFiles(dirs) >= want) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function smtpSource(port: number): { ok: boolean; output: string } {
  const res = spawnSync(
    'smtp-source',
    ['-s', String(SESSIONS), '-m', String(MESSAGES), '-l', String(SIZE), '-f', 'sender@client.test', '-t', USER, `127.0.0.1:${port}`],
    { encoding: 'utf8', timeout: 600_000 },
  );
  return { ok: res.status === 0, output: (res.stderr ?? '') + (res.stdout ?? '') };
}

async function runFancyMail(dir: string): Promise<number | null> {
  // The configuration a user gets (log level info, both threads), on free loopback ports.
  const setup = await writeFmailConfig(dir);
  writeFileSync(path.join(dir, 'users'), `${USER}:{PLAIN}secret::::::\n`);
  const fmail = await startFmail(setup);
  const maildir = path.join(dir, 'mail', USER);
  const started = Date.now();
  const src = smtpSource(setup.ports.smtp);
  if (!src.ok) console.log(`  smtp-source: ${src.output.trim().slice(0, 300)}`);
  const done = await waitForCount([path.join(maildir, 'new'), path.join(maildir, 'cur')], MESSAGES, 600_000);
  const seconds = (Date.now() - started) / 1000;
  await fmail.stop('SIGTERM');
  if (!done) {
    console.log(`  FancyMail: only ${countFiles([path.join(maildir, 'new'), path.join(maildir, 'cur')])} of ${MESSAGES} delivered`);
    return null;
  }
  return MESSAGES / seconds;
}

async function runPostfix(dir: string): Promise<number | null> {
  const port = await freePort();
  const pf = startPostfix({ dir, port, mailboxes: { 'bench.test': ['u1'] } });
  try {
    await new Promise((r) => setTimeout(r, 1500));
    const started = Date.now();
    const src = smtpSource(port);
    if (!src.ok) console.log(`  smtp-source: ${src.output.trim().slice(0, 300)}`);
    const done = await waitForCount([path.join(pf.maildir(USER), 'new')], MESSAGES, 600_000);
    const seconds = (Date.now() - started) / 1000;
    if (!done) {
      console.log(`  Postfix: only ${pf.maildirFiles(USER).length} of ${MESSAGES} delivered`);
      return null;
    }
    return MESSAGES / seconds;
  } finally {
    pf.stop();
  }
}

if (!postfixAvailable() || spawnSync('sh', ['-c', 'command -v smtp-source'], { stdio: 'ignore' }).status !== 0) {
  console.log('end-to-end vs Postfix: skipped (needs root, postfix and smtp-source)');
} else {
  const tmp = tempDir('fmail-e2e-bench-');
  try {
    console.log(`end to end: smtp-source -s ${SESSIONS} -m ${MESSAGES} -l ${SIZE}, until the last message is in the Maildir`);
    const fm = await runFancyMail(path.join(tmp.dir, 'fancymail'));
    console.log(`  FancyMail ${fm ? Math.round(fm).toLocaleString('en-US') : 'n/a'} msg/s`);
    const pf = await runPostfix(path.join(tmp.dir, 'postfix'));
    console.log(`  Postfix   ${pf ? Math.round(pf).toLocaleString('en-US') : 'n/a'} msg/s`);
    if (fm && pf) console.log(`  ratio FancyMail/Postfix = ${(fm / pf).toFixed(2)}`);
  } finally {
    tmp.cleanup();
  }
}
