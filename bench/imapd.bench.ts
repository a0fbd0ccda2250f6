// imapd, side by side with Dovecot's imap on the same Maildirs, same run: FETCH 1:2000 BODY[]
// of 4 KiB messages (one command, best of 3), SELECT of a 100,000-message mailbox (warm, best of 3),
// UID FETCH 1:* (FLAGS) on it, each with the server CPU time it cost (the machine is shared:
// CPU time moves less than wall time), and the memory 1,000 connections idling in IDLE cost
// (PSS growth of the whole server: FancyMail's process; every Dovecot process, shared pages split).
//
// BENCH_MESSAGES / BENCH_BIG / BENCH_IDLE for smaller runs. To profile FancyMail:
// FMAIL_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" BENCH_MARKS=1 (phase times on stderr).
// Dovecot needs root and dovecot-imapd (it runs mail as `nobody`).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { IpcClient } from '../src/ipc/index.js';
import { type DovecotImap, dovecotSkip, startDovecotImap } from '../test/helpers/dovecot.js';
import { freePort, tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const BIG = Number(process.env.BENCH_BIG ?? 100_000);
const IDLERS = Number(process.env.BENCH_IDLE ?? 1000);
const USER = 'alice@bench.test';
const BIG_USER = 'big@bench.test';
const IDLE_USER = 'idle@bench.test';
const PASSWORD = 'secret';
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

/** ImapClient - just enough IMAP to time commands: a response ends at its tagged line. */
class ImapClient {
  private chunks: Buffer[] = [];
  private size = 0;
  private wake: (() => void) | null = null;
  private ended = false;
  private n = 0;

  private constructor(private readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      this.wake?.();
    });
    sock.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }

  static async connect(port: number): Promise<ImapClient> {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    const c = new ImapClient(sock);
    await c.until('* OK');
    return c;
  }

  /**
   * until - wait for `marker` in what arrived; returns the bytes up to its line's end and drops
   * them. Only newly arrived bytes are searched and the chunks are joined once, at the end: a
   * join per arrival was quadratic in the response (a 40 MB FETCH took the client seconds).
   */
  private async until(marker: string): Promise<Buffer> {
    let scanned = 0;
    for (;;) {
      if (this.size > scanned) {
        const from = Math.max(0, scanned - marker.length - 1);
        const win = this.tailFrom(from);
        const i = win.indexOf(marker);
        const end = i >= 0 ? win.indexOf('\r\n', i + marker.length) : -1;
        if (end >= 0) {
          const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
          const out = all.subarray(0, from + end + 2);
          const rest = all.subarray(from + end + 2);
          this.chunks = rest.length ? [rest] : [];
          this.size = rest.length;
          return out;
        }
        // A marker seen without its line end yet: search again from it.
        scanned = i >= 0 ? from + i : this.size;
      }
      if (this.ended) throw new Error(`connection closed waiting for ${marker.trim()} (got ${JSON.stringify(this.tailFrom(Math.max(0, this.size - 300)).toString())})`);
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }

  /** tailFrom - the bytes from offset `from` to the end, copying only the chunks that hold them. */
  private tailFrom(from: number): Buffer {
    let start = this.size;
    let k = this.chunks.length;
    while (k > 0 && start > from) start -= this.chunks[--k]!.length;
    const parts = this.chunks.slice(k);
    parts[0] = parts[0]!.subarray(from - start);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  async cmd(text: string): Promise<Buffer> {
    const tag = `b${++this.n}`;
    this.sock.write(`${tag} ${text}\r\n`);
    const out = await this.until(`${tag} `);
    const last = out.subarray(out.lastIndexOf(`${tag} `)).toString();
    if (!last.startsWith(`${tag} OK`)) throw new Error(`${text.slice(0, 40)}: ${last.trim()}`);
    return out;
  }

  /** idle - start IDLE and wait for the continuation. */
  async idle(): Promise<void> {
    this.sock.write(`i IDLE\r\n`);
    await this.until('+ ');
  }

  close(): void {
    this.sock.destroy();
  }
}

async function login(port: number, user: string): Promise<ImapClient> {
  const c = await ImapClient.connect(port);
  await c.cmd(`LOGIN ${user} ${PASSWORD}`);
  return c;
}

interface Figures {
  fetchS: number;
  fetchBytes: number;
  selectMs: number;
  flagsMs: number;
  flagsLines: number;
  idleRssKiB: number;
  /** Server CPU (user + system) of the timed FETCH, in µs per message. */
  fetchCpuUs: number;
  selectCpuMs: number;
  flagsCpuMs: number;
}

/** mark - with BENCH_MARKS, a phase's start on stderr in the µs of CPU profiles' timestamps (monotonic clock), to cut a --cpu-prof of the server to it. */
const mark = (phase: string): void => {
  if (process.env.BENCH_MARKS) console.error(`mark ${phase} ${process.hrtime.bigint() / 1000n}`);
};

const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/**
 * measure - the four figures against one server; `rss` reads the server's memory in KiB,
 * `cpu` its CPU time so far in ms (clock ticks: 10 ms steps).
 */
async function measure(port: number, rss: () => number, cpu: () => number): Promise<Figures> {
  // IDLE memory first, on a quiet heap: measured after the 100,000-message SELECT, the server's
  // garbage collection of that work outweighed 1,000 connections (FancyMail showed a negative growth).
  const before = rss();
  const idlers: ImapClient[] = [];
  for (let i = 0; i < IDLERS; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, IDLERS - i) }, async () => {
        const x = await login(port, IDLE_USER);
        await x.cmd('SELECT INBOX');
        await x.idle();
        return x;
      }),
    );
    idlers.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const idleRssKiB = rss() - before;
  for (const x of idlers) x.close();

  const c = await login(port, USER);
  await c.cmd('SELECT INBOX');
  await c.cmd(`FETCH 1:${MESSAGES} BODY.PEEK[]`); // warm-up (caches, JIT)
  let fetchS = Infinity;
  let fetchCpuUs = Infinity;
  let body: Buffer = Buffer.alloc(0);
  let c0 = 0;
  let t0 = 0n;
  mark('fetch');
  for (let i = 0; i < 3; i++) {
    c0 = cpu();
    t0 = process.hrtime.bigint();
    body = await c.cmd(`FETCH 1:${MESSAGES} BODY.PEEK[]`);
    fetchS = Math.min(fetchS, seconds(t0));
    fetchCpuUs = Math.min(fetchCpuUs, ((cpu() - c0) * 1000) / MESSAGES);
  }
  mark('fetchend');
  c.close();

  const b = await login(port, BIG_USER);
  mark('select');
  await b.cmd('SELECT INBOX');
  await b.cmd('UNSELECT');
  let selectMs = Infinity;
  let selectCpuMs = Infinity;
  for (let i = 0; i < 3; i++) {
    c0 = cpu();
    t0 = process.hrtime.bigint();
    await b.cmd('SELECT INBOX');
    selectMs = Math.min(selectMs, seconds(t0) * 1000);
    selectCpuMs = Math.min(selectCpuMs, cpu() - c0);
    if (i < 2) await b.cmd('UNSELECT');
  }
  mark('flags');
  await b.cmd('UID FETCH 1:* (FLAGS)');
  c0 = cpu();
  t0 = process.hrtime.bigint();
  const flags = await b.cmd('UID FETCH 1:* (FLAGS)');
  const flagsMs = seconds(t0) * 1000;
  const flagsCpuMs = cpu() - c0;
  mark('flagsend');
  const flagsLines = flags.toString('latin1').split('\r\n').filter((l) => l.startsWith('* ') && l.includes(' FETCH ')).length; // untagged only: FancyMail's tagged OK says 'UID FETCH completed'
  b.close();

  return { fetchS, fetchBytes: body.length, selectMs, flagsMs, flagsLines, idleRssKiB, fetchCpuUs, selectCpuMs, flagsCpuMs };
}

/** memOf - proportional set size (PSS, shared pages split between sharers) in KiB, summed. */
function memOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      total += m ? Number(m[1]) : 0;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

/** cpuOf - user + system CPU time of the processes, in ms (their waited-for children too). */
function cpuOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the `(comm)`: utime, stime, cutime, cstime are the 12th to 15th.
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks * TICK_MS;
}

/**
 * dovecotPids - the processes of the Dovecot instance whose base_dir is RUN: its master (from
 * master.pid) and every process below it; not another Dovecot that may run on the machine.
 */
function dovecotPids(run: string): number[] {
  const master = Number(readFileSync(path.join(run, 'master.pid'), 'utf8').trim());
  const children = new Map<number, number[]>();
  for (const p of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  for (const todo = [master]; todo.length > 0 && out.length < 100_000; ) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

async function startFancyMail(dir: string): Promise<{ child: ChildProcess; imap: number }> {
  const imap = await freePort();
  const toml = [
    `data_dir = ${JSON.stringify(dir)}`,
    'hostname = "mx.bench.test"',
    '[log]',
    'level = "warn"',
    '[metrics]',
    'listen = ""',
    '[ipc]',
    ...['authd', 'queued', 'smtp_out', 'mailboxd', 'router', 'imapd'].map((k) => `${k} = "unix://${dir}/${k}.sock"`),
    '[imapd]',
    'host = "127.0.0.1"',
    `port = ${imap}`,
    'imaps_port = -1',
    `max_connections = ${IDLERS + 100}`,
  ].join('\n');
  const cfgFile = path.join(dir, 'fmail.toml');
  writeFileSync(cfgFile, toml + '\n');
  // FMAIL_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") as for the tests' spawned fmail.
  const nodeArgs = process.env.FMAIL_NODE_ARGS ? process.env.FMAIL_NODE_ARGS.split(' ') : [];
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'bin/fmail.js'), 'start', 'authd', 'mailboxd', 'imapd', '-c', cfgFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) if (line.includes('running')) break;
  return { child, imap };
}

/** message - SIZE bytes of plain text. */
function message(i: number, size: number): Buffer {
  const head = `From: bench@remote.test\r\nTo: ${USER}\r\nSubject: message ${i}\r\nMessage-ID: <${i}@bench.test>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog. 0123456789 .........\r\n';
  let body = head;
  while (body.length + line.length <= size - 2) body += line;
  return Buffer.from(body.padEnd(size - 2, 'x') + '\r\n');
}

/** fill - the FETCH set through mailboxd's `store`; the big mailbox written on disk, as another MDA would. */
async function fill(dir: string): Promise<void> {
  const secret = readFileSync(path.join(dir, 'ipc.secret'), 'utf8').trim();
  const clients = Array.from({ length: 4 }, () => new IpcClient(`unix://${dir}/mailboxd.sock`, { secret }));
  let next = 1;
  await Promise.all(
    clients.map(async (c) => {
      while (next <= MESSAGES) {
        const data = message(next++, 4096);
        const r = await c.store('store', [USER, USER, String(data.length)], data);
        if (!r.ok) throw new Error(`store: ${r.params.join(' ')}`);
      }
    }),
  );
  await clients[0]!.store('store', [IDLE_USER, IDLE_USER, '20'], Buffer.from('Subject: i\r\n\r\nidle\r\n'));
  for (const c of clients) c.close();
  const small = 'Subject: x\r\n\r\nbody\r\n';
  const base = path.join(dir, 'mail', BIG_USER);
  for (const sub of ['tmp', 'new', 'cur']) mkdirSync(path.join(base, sub), { recursive: true });
  for (let i = 0; i < BIG; i++) writeFileSync(path.join(base, 'cur', `${1700000000 + Math.floor(i / 1000)}.M${i % 1000}P1Q${i}.bench,S=${small.length}:2,${i % 3 === 0 ? 'S' : ''}`), small);
}

async function runDovecot(maildirs: string): Promise<Figures | null> {
  const skip = dovecotSkip();
  if (skip) {
    console.log(`  Dovecot: skipped (${skip})`);
    return null;
  }
  let dv: DovecotImap;
  try {
    dv = await startDovecotImap(Object.fromEntries([USER, BIG_USER, IDLE_USER].map((u) => [u, PASSWORD])), { mailDir: maildirs, connections: IDLERS + 100 });
  } catch (err) {
    console.log(`  Dovecot: did not start: ${(err as Error).message.slice(0, 500)}`);
    return null;
  }
  try {
    return await measure(dv.port, () => memOf(dovecotPids(path.join(dv.dir, 'run'))), () => cpuOf(dovecotPids(path.join(dv.dir, 'run'))));
  } catch (err) {
    console.log(`  Dovecot failed: ${(err as Error).message}`);
    console.log(dv.log().split('\n').filter((l) => /Error|Panic|Fatal/.test(l)).slice(-5).join('\n'));
    return null;
  } finally {
    dv.stop();
  }
}

function report(name: string, f: Figures | null): void {
  if (!f) return console.log(`  ${name}: n/a`);
  console.log(
    `  ${name.padEnd(9)} FETCH BODY[] ${(MESSAGES / f.fetchS).toFixed(0).padStart(6)} msg/s (${((f.fetchS * 1e6) / MESSAGES).toFixed(0)} us/msg, CPU ${f.fetchCpuUs.toFixed(0)} us/msg, ${(f.fetchBytes / f.fetchS / 1048576).toFixed(1)} MiB/s)` +
      ` | SELECT ${BIG} ${f.selectMs.toFixed(1)} ms (CPU ${f.selectCpuMs.toFixed(0)} ms) | UID FETCH 1:* (FLAGS) ${f.flagsMs.toFixed(1)} ms (CPU ${f.flagsCpuMs.toFixed(0)} ms, ${f.flagsLines} lines)` +
      ` | ${IDLERS} IDLE: +${(f.idleRssKiB / 1024).toFixed(1)} MiB PSS (${(f.idleRssKiB / IDLERS).toFixed(1)} KiB each)`,
  );
}

const tmp = tempDir('fmail-imapd-bench-');
try {
  chmodSync(tmp.dir, 0o755);
  const fmDir = path.join(tmp.dir, 'fancymail');
  mkdirSync(fmDir, { recursive: true });
  chmodSync(fmDir, 0o755);
  writeFileSync(path.join(fmDir, 'users'), [USER, BIG_USER, IDLE_USER].map((u) => `${u}:{PLAIN}${PASSWORD}::::::\n`).join(''));
  console.log(`imapd: ${MESSAGES} x 4 KiB FETCH BODY[] in one command; SELECT of ${BIG} messages (warm, best of 3); UID FETCH 1:* (FLAGS); ${IDLERS} connections in IDLE; loopback, no TLS`);
  const fm = await startFancyMail(fmDir);
  let fmFig: Figures | null = null;
  try {
    await fill(fmDir);
    fmFig = await measure(fm.imap, () => memOf([fm.child.pid!]), () => cpuOf([fm.child.pid!]));
  } finally {
    fm.child.kill('SIGTERM');
    await once(fm.child, 'exit');
  }
  // fmail start made its data folder private; Dovecot's mail processes (nobody) must get in.
  chmodSync(fmDir, 0o755);
  const dv = await runDovecot(path.join(fmDir, 'mail'));
  report('FancyMail', fmFig);
  report('Dovecot', dv);
  if (fmFig && dv) {
    console.log(
      `  ratio FancyMail/Dovecot: FETCH rate ${(dv.fetchS / fmFig.fetchS).toFixed(2)}x, SELECT time ${(fmFig.selectMs / dv.selectMs).toFixed(2)}x, FLAGS time ${(fmFig.flagsMs / dv.flagsMs).toFixed(2)}x, IDLE memory ${(fmFig.idleRssKiB / dv.idleRssKiB).toFixed(2)}x`,
    );
  }
} catch (err) {
  // Show the server's own account of what went wrong before the folder is gone.
  try {
    const log = readFileSync(path.join(tmp.dir, 'fancymail', 'fmail.log'), 'utf8').split('\n');
    console.log(log.filter((l) => /"level":(40|50|60)|imapd/.test(l)).slice(-10).join('\n'));
  } catch {
    // no log
  }
  throw err;
} finally {
  tmp.cleanup();
}
