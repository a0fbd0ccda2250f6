// End to end, side by side with Postfix (and Haraka for accepting): the same smtp-source load
// (4 KiB messages) into each, in the same run, alternating FancyMail and Postfix, medians.
//
// Parts (BENCH_PARTS, default all):
//   e2e     timed from the first connection until the last message is in the recipient's
//           Maildir; at BENCH_SESSIONS sessions (default 20,1,100), BENCH_RUNS runs each (3).
//           Durability on in both (FancyMail: journal/queue file and Maildir fdatasynced, folders
//           fsynced; Postfix: its queue file and Maildir file fsynced). CPU seconds per 1,000
//           messages: FancyMail's process; Postfix's master and every child (reaped ones
//           counted through the master's cutime/cstime).
//   accept  accepting only, until smtp-source's last 250: FancyMail with authd, queued and
//           smtpd (no router: 250 = durably queued), Postfix holding every message
//           (check_client_access static:HOLD: cleanup still fsyncs the queue file), Haraka 3 with
//           queue/discard (keeps nothing; HARAKA=path to its bin/haraka, default
//           /tmp/haraka/node_modules/Haraka/bin/haraka, skipped when missing).
//   strace  strace -f -c over BENCH_STRACE_MESSAGES (2,000) end to end, 20 sessions: fsync +
//           fdatasync, futex and all syscalls per message, for both.
//
// Every server runs as a service does, in a session of its own: Postfix's master daemonises,
// FancyMail and Haraka are started detached (with the kernel's autogroup scheduling a session is one CPU
// share, shared otherwise with the benchmark and smtp-source). Before each run the page cache is
// written back and dropped (settle() says why: one server's deletions made the next one slower).
//
// BENCH_QUEUE=file,postgres (default file): queued's backend for FancyMail's runs; with postgres
// a private PostgreSQL cluster (test/helpers/postgres.ts, Debian's postgresql package) is started
// once and each run gets a fresh migrated database (its CPU, postmaster and backends, counted in
// FancyMail's); the e2e part then shows one FancyMail line per backend.
//
// BENCH_WARMUP (default 2,000; 0 = cold): messages sent (and, end to end, delivered) into each
// server after it starts and before the timed part, same sessions, untimed; then the timed
// messages and the CPU count start. A mail server runs for days: this measures it warm
// (JIT-compiled code, grown heap) rather than in its first seconds; Postfix and Haraka get the
// same warm-up. Cold, FancyMail's first 10,000 messages also pay V8's optimising compiler (about
// half the CPU of V8's helper threads in a perf profile) and a young heap still growing.
//
// BENCH_MESSAGES (10,000) per run; at 1 session BENCH_MESSAGES_ONE (2,000: one session is
// latency-bound, 10,000 would take many minutes per run). Needs root and the Debian postfix
// package (smtp-source).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import pg from 'pg';

import { migrate } from '../src/queued/pg-schema.js';
import { startFmail, writeFmailConfig } from '../test/helpers/fmail-process.js';
import { NO_POSTGRES, type TestPostgres, startPostgres } from '../test/helpers/postgres.js';
import { postfixAvailable, startPostfix } from '../test/helpers/postfix.js';
import { freePort, tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000);
const MESSAGES_ONE = Number(process.env.BENCH_MESSAGES_ONE ?? Math.min(MESSAGES, 2000));
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SESSIONS = (process.env.BENCH_SESSIONS ?? '20,1,100').split(',').map(Number);
const PARTS = (process.env.BENCH_PARTS ?? 'e2e,accept,strace').split(',');
const STRACE_MESSAGES = Number(process.env.BENCH_STRACE_MESSAGES ?? 2000);
const HARAKA = process.env.HARAKA ?? '/tmp/haraka/node_modules/Haraka/bin/haraka';
/** How long a run waits for the last message in the Maildir. */
const WAIT_MS = Number(process.env.BENCH_WAIT_S ?? 900) * 1000;
const QUEUES = (process.env.BENCH_QUEUE ?? 'file').split(',') as Array<'file' | 'postgres'>;
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2000);
const SIZE = 4096;
const USER = 'u1@bench.test';

interface Result {
  rate: number;
  /** CPU seconds per 1,000 messages. */
  cpu: number;
  strace?: Record<string, number>;
}

type Mode = 'e2e' | 'accept';

// settle - before each server's run: write back what the previous run left dirty and drop the
// clean page cache. Why: on ext4 without a journal (this VM's disk), allocating an inode skips,
// one by one, every inode freed in the last minute (five, if its table block is still dirty)
// whose table block is still cached. Postfix deletes a queue file per message, so the server
// that ran after it paid for Postfix's 10,000 deletions on every file it created (measured with
// the e2e probe: FancyMail after 10,000 files were deleted 843-999 msg/s, otherwise
// 1,146-1,198; perf after some 40,000 deletions: 22 % of its CPU in find_inode_bit and
// recently_deleted). Each server now pays
// only for its own deletions. Needs root (as the rest of this bench); said once if it fails.
let settleWarned = false;
function settle(): void {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
  } catch (err) {
    if (!settleWarned) console.log(`  (could not drop the page cache between runs: ${(err as Error).message})`);
    settleWarned = true;
  }
}

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
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

async function smtpSource(port: number, sessions: number, messages: number): Promise<boolean> {
  const child = spawn('smtp-source', ['-s', String(sessions), '-m', String(messages), '-l', String(SIZE), '-f', 'sender@client.test', '-t', USER, `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 900_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  if (code !== 0) console.log(`  smtp-source: ${err.trim().slice(0, 300)}`);
  return code === 0;
}

// warmUp - BENCH_WARMUP messages into the server at PORT, untimed; end to end, until they are
// all in BOXES. False (and said) when that fails.
async function warmUp(port: number, sessions: number, mode: Mode, boxes: string[]): Promise<boolean> {
  if (WARMUP <= 0) return true;
  const ok = (await smtpSource(port, sessions, WARMUP)) && (mode === 'accept' || (await waitForCount(boxes, WARMUP, WAIT_MS)));
  if (!ok) console.log(`  warm-up of ${WARMUP} messages did not complete`);
  return ok;
}

// CPU seconds (user + system) of PID; with REAPED, also of its children it has waited for.
function cpuOf(pid: number, reaped = false): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const tick = 100;
    return (Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0)) / tick;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(f[1]) === pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

// A process tree's CPU (Postfix's master, Haraka's cluster master): the parent with its reaped
// children, plus the live ones.
function treeCpu(master: number): () => number {
  return () => cpuOf(master, true) + childrenOf(master).reduce((n, p) => n + cpuOf(p), 0);
}

async function startStrace(pids: number[], file: string): Promise<ChildProcess> {
  const st = spawn('strace', ['-f', '-c', '-o', file, ...pids.flatMap((p) => ['-p', String(p)])], { stdio: ['ignore', 'ignore', 'pipe'] });
  // strace says "Process N attached" for each pid once it is in.
  let attached = 0;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 5000);
    st.stderr!.on('data', (d: Buffer) => {
      attached += (d.toString().match(/attached/g) ?? []).length;
      if (attached >= pids.length) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return st;
}

async function stopStrace(st: ChildProcess, file: string, messages: number): Promise<Record<string, number>> {
  st.kill('SIGINT');
  await once(st, 'exit');
  const calls: Record<string, number> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m) calls[m[2]!] = Number(m[1]);
    const t = /^\s*100\.00\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total\s*$/.exec(line);
    if (t) calls.total = Number(t[1]);
  }
  const per = (n: number | undefined) => (n ?? 0) / messages;
  return { fsync: per((calls.fsync ?? 0) + (calls.fdatasync ?? 0)), futex: per(calls.futex), total: per(calls.total) };
}

let pgCluster: TestPostgres | null = null;
let pgDbs = 0;

// queueToml - the [queued] section for BACKEND: postgres gets a fresh migrated database.
async function queueToml(backend: 'file' | 'postgres'): Promise<string> {
  if (backend === 'file') return '';
  pgCluster ??= await startPostgres();
  const url = await pgCluster.createDatabase(`bench${++pgDbs}`);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await migrate(c);
  await c.end();
  return `[queued]\nbackend = "postgres"\npostgres_url = ${JSON.stringify(url)}\n`;
}

async function runFancyMail(dir: string, sessions: number, mode: Mode, messages: number, straceFile?: string, backend: 'file' | 'postgres' = 'file'): Promise<Result | null> {
  settle();
  const setup = await writeFmailConfig(dir, await queueToml(backend));
  writeFileSync(path.join(dir, 'users'), `${USER}:{PLAIN}secret::::::\n`);
  // Detached (a session of its own), as Postfix's daemonised master runs (see startFmail).
  const fmail = await startFmail(setup, mode === 'accept' ? ['authd', 'queued', 'smtpd'] : [], 30_000, { detached: true });
  const pid = fmail.child.pid!;
  const maildir = path.join(dir, 'mail', USER);
  const boxes = [path.join(maildir, 'new'), path.join(maildir, 'cur')];
  try {
    if (!(await warmUp(setup.ports.smtp, sessions, mode, boxes))) return null;
    const st = straceFile ? await startStrace([pid], straceFile) : null;
    // With the postgres queue, PostgreSQL's CPU counts too (the postmaster and its backends).
    const pgCpu = backend === 'postgres' && pgCluster ? treeCpu(pgCluster.pid()) : () => 0;
    const cpu0 = cpuOf(pid) + pgCpu();
    const started = Date.now();
    const ok = await smtpSource(setup.ports.smtp, sessions, messages);
    const done = mode === 'accept' ? ok : await waitForCount(boxes, WARMUP + messages, WAIT_MS);
    const seconds = (Date.now() - started) / 1000;
    const cpu = cpuOf(pid) + pgCpu() - cpu0;
    const strace = st ? await stopStrace(st, straceFile!, messages) : undefined;
    if (!done) {
      console.log(`  FancyMail (${backend}): only ${countFiles(boxes)} of ${WARMUP + messages} delivered; its warnings and errors:`);
      // What went wrong, from the log (level 40 = warn and up).
      const log = existsSync(path.join(dir, 'fmail.log')) ? readFileSync(path.join(dir, 'fmail.log'), 'utf8').split('\n') : [];
      for (const l of log.filter((x) => /"level":(4|5|6)0/.test(x)).slice(0, 8)) console.log(`    ${l.slice(0, 400)}`);
      return null;
    }
    return { rate: messages / seconds, cpu: (cpu / messages) * 1000, strace };
  } finally {
    await fmail.stop('SIGTERM');
  }
}

async function runPostfix(dir: string, sessions: number, mode: Mode, messages: number, straceFile?: string): Promise<Result | null> {
  settle();
  const port = await freePort();
  const pf = startPostfix({
    dir,
    port,
    mailboxes: { 'bench.test': ['u1'] },
    mainCf: mode === 'accept' ? ['smtpd_client_restrictions = check_client_access static:HOLD'] : [],
  });
  try {
    await waitForCount([path.join(dir, 'spool/pid')], 1, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    if (!(await warmUp(port, sessions, mode, [path.join(pf.maildir(USER), 'new')]))) return null;
    const master = pf.masterPid();
    const cpuNow = treeCpu(master);
    const st = straceFile ? await startStrace([master, ...childrenOf(master)], straceFile) : null;
    const cpu0 = cpuNow();
    const started = Date.now();
    const ok = await smtpSource(port, sessions, messages);
    const done = mode === 'accept' ? ok : await waitForCount([path.join(pf.maildir(USER), 'new')], WARMUP + messages, 900_000);
    const seconds = (Date.now() - started) / 1000;
    const cpu = cpuNow() - cpu0;
    const strace = st ? await stopStrace(st, straceFile!, messages) : undefined;
    if (!done) {
      console.log(`  Postfix: only ${pf.maildirFiles(USER).length} of ${WARMUP + messages} delivered`);
      return null;
    }
    return { rate: messages / seconds, cpu: (cpu / messages) * 1000, strace };
  } finally {
    pf.stop();
  }
}

async function runHaraka(dir: string, sessions: number, messages: number): Promise<Result | null> {
  settle();
  const port = await freePort();
  spawnSync(process.execPath, [HARAKA, '-i', dir], { stdio: 'ignore' });
  const cfg = path.join(dir, 'config');
  writeFileSync(path.join(cfg, 'smtp.ini'), `listen=127.0.0.1:${port}\n`);
  writeFileSync(path.join(cfg, 'plugins'), 'rcpt_to.in_host_list\nqueue/discard\n');
  writeFileSync(path.join(cfg, 'host_list'), 'bench.test\n');
  // Detached, as a service runs (see the header).
  const child = spawn(process.execPath, [HARAKA, '-c', dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, YES_REALLY_DO_DISCARD: '1' }, detached: true });
  const stop = (): void => void child.kill('SIGTERM');
  process.once('exit', stop);
  child.stdout!.resume();
  child.stderr!.resume();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) {
        console.log('  Haraka did not start');
        return null;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!(await warmUp(port, sessions, 'accept', []))) return null;
    const cpuNow = treeCpu(child.pid!);
    const cpu0 = cpuNow();
    const started = Date.now();
    if (!(await smtpSource(port, sessions, messages))) return null;
    const seconds = (Date.now() - started) / 1000;
    return { rate: messages / seconds, cpu: ((cpuNow() - cpu0) / messages) * 1000 };
  } finally {
    process.removeListener('exit', stop);
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function summary(label: string, fm: Result[], pf: Result[], extra?: { name: string; results: Result[] }): void {
  const line = (name: string, rs: Result[]) =>
    `  ${name.padEnd(10)} ${rs.map((r) => fmt(r.rate).padStart(6)).join(' ')}  median ${fmt(median(rs.map((r) => r.rate))).padStart(6)} msg/s, ${median(rs.map((r) => r.cpu)).toFixed(2)} CPU s/1000 msgs`;
  console.log(label);
  if (fm.length) console.log(line('FancyMail', fm));
  if (pf.length) console.log(line('Postfix', pf));
  if (extra?.results.length) console.log(line(extra.name, extra.results));
  if (fm.length && pf.length) console.log(`  ratio FancyMail/Postfix (medians) = ${(median(fm.map((r) => r.rate)) / median(pf.map((r) => r.rate))).toFixed(2)}`);
  if (fm.length && extra?.results.length) console.log(`  ratio FancyMail/${extra.name} (medians) = ${(median(fm.map((r) => r.rate)) / median(extra.results.map((r) => r.rate))).toFixed(2)}`);
}

const warmNote = (): string => (WARMUP > 0 ? `, after ${fmt(WARMUP)} untimed warm-up messages` : '');

const need = (r: Result | null, into: Result[]) => {
  if (r) into.push(r);
};

if (QUEUES.includes('postgres') && NO_POSTGRES) {
  console.log(`end-to-end on the postgres queue: skipped (${NO_POSTGRES})`);
} else if (!postfixAvailable() || spawnSync('sh', ['-c', 'command -v smtp-source'], { stdio: 'ignore' }).status !== 0) {
  console.log('end-to-end vs Postfix: skipped (needs root, postfix and smtp-source)');
} else {
  const tmp = tempDir('fmail-e2e-bench-');
  let n = 0;
  const fresh = () => {
    const d = path.join(tmp.dir, String(n++));
    mkdirSync(d, { recursive: true });
    return d;
  };
  try {
    if (PARTS.includes('e2e')) {
      for (const sessions of SESSIONS) {
        const pf: Result[] = [];
        const messages = sessions === 1 ? MESSAGES_ONE : MESSAGES;
        const byQueue = new Map(QUEUES.map((q) => [q, [] as Result[]]));
        for (let r = 0; r < RUNS; r++) {
          for (const q of QUEUES) need(await runFancyMail(fresh(), sessions, 'e2e', messages, undefined, q), byQueue.get(q)!);
          need(await runPostfix(fresh(), sessions, 'e2e', messages), pf);
        }
        const [first, ...others] = QUEUES;
        const label = (q: string) => (QUEUES.length > 1 || q !== 'file' ? `FancyMail/${q === 'postgres' ? 'pg' : q}` : 'FancyMail');
        summary(`end to end: smtp-source -s ${sessions} -m ${messages} -l ${SIZE}, until the last message is in the Maildir (runs alternate)${warmNote()}`, byQueue.get(first!)!, pf, others[0] ? { name: label(others[0]), results: byQueue.get(others[0])! } : undefined);
        if (QUEUES.length > 1) console.log(`  (the FancyMail line is queued backend ${first})`);
      }
    }
    if (PARTS.includes('accept')) {
      const fm: Result[] = [];
      const pf: Result[] = [];
      const hk: Result[] = [];
      const haraka = existsSync(HARAKA);
      for (let r = 0; r < RUNS; r++) {
        need(await runFancyMail(fresh(), 20, 'accept', MESSAGES), fm);
        need(await runPostfix(fresh(), 20, 'accept', MESSAGES), pf);
        if (haraka) need(await runHaraka(fresh(), 20, MESSAGES), hk);
      }
      summary(`accept only: smtp-source -s 20 -m ${MESSAGES} -l ${SIZE}, until the last 250 (FancyMail without router, Postfix holding, Haraka queue/discard)${warmNote()}`, fm, pf, { name: 'Haraka', results: hk });
      if (!haraka) console.log(`  Haraka: not found at ${HARAKA} (npm install Haraka@3 in /tmp/haraka, or set HARAKA)`);
    }
    if (PARTS.includes('strace')) {
      const fm = await runFancyMail(fresh(), 20, 'e2e', STRACE_MESSAGES, path.join(tmp.dir, 'fm.strace'));
      const pf = await runPostfix(fresh(), 20, 'e2e', STRACE_MESSAGES, path.join(tmp.dir, 'pf.strace'));
      console.log(`strace -f -c, ${STRACE_MESSAGES} messages end to end, 20 sessions: syscalls per message${warmNote()}`);
      for (const [name, r] of [['FancyMail', fm], ['Postfix', pf]] as const) {
        if (r?.strace) console.log(`  ${name.padEnd(10)} fsync+fdatasync ${r.strace.fsync!.toFixed(2)}  futex ${r.strace.futex!.toFixed(1)}  all ${r.strace.total!.toFixed(1)}`);
      }
    }
  } finally {
    await (pgCluster as TestPostgres | null)?.cleanup();
    tmp.cleanup();
  }
}
