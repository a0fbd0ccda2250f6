// Full disks and dead servers, from outside (`fmail start` as child processes, a real SMTP
// client):
//   - the spool on a small tmpfs that fills up: smtpd answers 452 4.3.1, nothing acknowledged
//     is lost, and mail is taken again once space returns;
//   - the Maildirs on a small tmpfs that fills up: mailboxd answers 4.3.1, the router defers,
//     and delivery resumes by itself when space returns;
//   - queued down: smtpd answers 451 at once (no hang until an IPC timeout);
//   - mailboxd down: mail waits in the queue and is delivered once mailboxd is back.
// The tmpfs tests need root (mount); they are skipped cleanly where mounting is not allowed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import nodemailer from 'nodemailer';

import { type FmailProcess, type FmailSetup, fmailSync, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const USER = 'disk@fancymail.test';
const SERVERS = ['authd', 'queued', 'mailboxd', 'smtp-out', 'router', 'smtpd'];

const dirs: Array<{ cleanup(): void }> = [];
const mounts: string[] = [];
after(() => {
  for (const m of mounts.splice(0)) spawnSync('umount', ['-l', m]);
  for (const d of dirs.splice(0)) d.cleanup();
});

/** mountTmpfs - a size-limited tmpfs at DIR, or null when this machine does not let us mount. */
function mountTmpfs(dir: string, size: string): string | null {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  mounts.push(dir);
  return dir;
}

const canMount = ((): boolean => {
  if (process.getuid?.() !== 0) return false;
  const t = tempDir('fmail-mount-probe-');
  const ok = mountTmpfs(path.join(t.dir, 'm'), '64k') !== null;
  if (ok) {
    spawnSync('umount', [path.join(t.dir, 'm')]);
    mounts.pop();
  }
  t.cleanup();
  return ok;
})();

/** fill - write zeros into FILE until the filesystem is full; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let n = 0;
  try {
    for (let i = 0; i < 100_000; i++) n += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  // The last partial page: write byte by byte until nothing fits.
  const fd2 = openSync(file, 'a');
  try {
    for (let i = 0; i < 65_536; i++) n += writeSync(fd2, Buffer.alloc(1));
  } catch {
    // full
  } finally {
    closeSync(fd2);
  }
  return n;
}

/** send - one message over SMTP; resolves with the final reply code and text (250 or the error). */
async function send(port: number, tag: string, size = 2000): Promise<{ code: number; response: string; ms: number }> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, connectionTimeout: 60_000, socketTimeout: 60_000 });
  const t0 = Date.now();
  try {
    const info = await t.sendMail({
      envelope: { from: 'sender@remote.test', to: [USER] },
      raw: `From: <sender@remote.test>\r\nTo: <${USER}>\r\nSubject: ${tag}\r\n\r\n${'fault test line\r\n'.repeat(Math.ceil(size / 17))}`,
    });
    return { code: Number(info.response.slice(0, 3)), response: info.response, ms: Date.now() - t0 };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return { code: e.responseCode ?? 0, response: e.response ?? e.message, ms: Date.now() - t0 };
  } finally {
    t.close();
  }
}

function delivered(setup: FmailSetup, maildirs: string, tag: string): boolean {
  for (const sub of ['new', 'cur']) {
    let files: string[] = [];
    try {
      files = readdirSync(path.join(maildirs, USER, sub));
    } catch {
      continue;
    }
    for (const f of files) {
      try {
        if (readFileSync(path.join(maildirs, USER, sub, f), 'latin1').includes(`Subject: ${tag}\r\n`)) return true;
      } catch {
        // moved while we looked
      }
    }
  }
  void setup;
  return false;
}

function logEvents(setup: FmailSetup, event: string): Array<Record<string, unknown>> {
  let text = '';
  try {
    text = readFileSync(path.join(setup.dir, 'fmail.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function system(extraToml: string, separate: boolean): Promise<{ setup: FmailSetup; procs: Map<string, FmailProcess>; stop(): Promise<void> }> {
  const t = tempDir('fmail-faults-');
  dirs.push(t);
  const setup = await writeFmailConfig(t.dir, `[router]\nretry_s = 1\nmax_retry_s = 2\n${extraToml}`);
  assert.equal(fmailSync(['user', 'add', USER, '--password-stdin', '-c', setup.configFile], 'pw\n').status, 0);
  const procs = new Map<string, FmailProcess>();
  if (separate) for (const s of SERVERS) procs.set(s, await startFmail(setup, [s]));
  else procs.set('all', await startFmail(setup, []));
  return {
    setup,
    procs,
    async stop() {
      for (const p of procs.values()) await p.stop('SIGTERM');
    },
  };
}

describe('full disks', { skip: canMount ? false : 'needs root and tmpfs mounts' }, () => {
  test('spool full: 452 4.3.1, nothing acknowledged lost, accepted again once space returns', { timeout: 120_000 }, async () => {
    const t = tempDir('fmail-spool-fs-');
    dirs.push(t);
    const spool = mountTmpfs(path.join(t.dir, 'spool'), '2m')!;
    const s = await system(`[queued]\nspool = ${JSON.stringify(spool)}\n`, false);
    try {
      const before = await send(s.setup.ports.smtp, 'before the disk filled');
      assert.equal(before.code, 250, before.response);
      await waitFor(() => delivered(s.setup, path.join(s.setup.dir, 'mail'), 'before the disk filled'), 30_000, 100);
      const filler = path.join(spool, 'filler');
      fill(filler);
      const full = await send(s.setup.ports.smtp, 'while full', 20_000);
      assert.equal(full.code, 452, `full spool: ${full.response}`);
      assert.match(full.response, /^452 4\.3\.1 /);
      console.log(`# spool full: "${full.response}" after ${full.ms} ms`);
      rmSync(filler);
      // Space is back: the same message is taken and delivered, with no restart.
      const again = await send(s.setup.ports.smtp, 'while full', 20_000);
      assert.equal(again.code, 250, again.response);
      await waitFor(() => delivered(s.setup, path.join(s.setup.dir, 'mail'), 'while full'), 30_000, 100);
      assert.ok(delivered(s.setup, path.join(s.setup.dir, 'mail'), 'before the disk filled'), 'the acknowledged message is still there');
    } finally {
      await s.stop();
    }
  });

  test('Maildirs full: mailboxd answers 4.3.1, the router defers, delivery resumes by itself', { timeout: 120_000 }, async () => {
    const t = tempDir('fmail-mail-fs-');
    dirs.push(t);
    const maildirs = mountTmpfs(path.join(t.dir, 'mail'), '2m')!;
    const s = await system(`[mailboxd]\nmaildirs = ${JSON.stringify(maildirs)}\n`, false);
    try {
      const first = await send(s.setup.ports.smtp, 'first');
      assert.equal(first.code, 250, first.response);
      await waitFor(() => delivered(s.setup, maildirs, 'first'), 30_000, 100);
      const filler = path.join(maildirs, 'filler');
      fill(filler);
      const second = await send(s.setup.ports.smtp, 'second', 20_000);
      assert.equal(second.code, 250, `the spool has room: ${second.response}`);
      const qid = /queued as (\S+)/.exec(second.response)?.[1];
      const deferral = await waitFor(() => logEvents(s.setup, 'router.deferred').find((l) => l.qid === qid), 30_000, 100);
      assert.match(String(deferral.reason), /4\.3\.1/, 'mailboxd said: disk full');
      console.log(`# Maildirs full: router deferred ${qid}: ${String(deferral.reason)}`);
      rmSync(filler);
      // No flush, no restart: the router's own retry delivers it.
      await waitFor(() => delivered(s.setup, maildirs, 'second'), 30_000, 100);
      assert.ok(delivered(s.setup, maildirs, 'first'));
    } finally {
      await s.stop();
    }
  });
});

describe('dead servers', () => {
  test('queued down: smtpd answers 451 at once; back up: 250', { timeout: 120_000 }, async () => {
    const s = await system('', true);
    try {
      await s.procs.get('queued')!.stop('SIGKILL');
      const r = await send(s.setup.ports.smtp, 'no queue');
      assert.equal(r.code, 451, r.response);
      assert.ok(r.ms < 5000, `answered in ${r.ms} ms, not after an IPC timeout`);
      console.log(`# queued down: "${r.response}" after ${r.ms} ms (whole SMTP session)`);
      s.procs.set('queued', await startFmail(s.setup, ['queued']));
      const ok = await send(s.setup.ports.smtp, 'queue back');
      assert.equal(ok.code, 250, ok.response);
      await waitFor(() => delivered(s.setup, path.join(s.setup.dir, 'mail'), 'queue back'), 30_000, 100);
    } finally {
      await s.stop();
    }
  });

  test('mailboxd down: mail waits in the queue, delivered once mailboxd is back', { timeout: 120_000 }, async () => {
    const s = await system('', true);
    try {
      await s.procs.get('mailboxd')!.stop('SIGKILL');
      const r = await send(s.setup.ports.smtp, 'waits');
      assert.equal(r.code, 250, r.response);
      const qid = /queued as (\S+)/.exec(r.response)?.[1];
      await waitFor(() => logEvents(s.setup, 'router.deferred').find((l) => l.qid === qid), 30_000, 100);
      const listed = fmailSync(['queue', 'list', '-c', s.setup.configFile]);
      assert.match(listed.stdout, new RegExp(`${qid}.*incoming`), `in the queue: ${listed.stdout}`);
      s.procs.set('mailboxd', await startFmail(s.setup, ['mailboxd']));
      await waitFor(() => delivered(s.setup, path.join(s.setup.dir, 'mail'), 'waits'), 30_000, 100);
    } finally {
      await s.stop();
    }
  });
});
