// pop3d, side by side with Dovecot on the same Maildirs, same run: one client logs in and RETRs
// 2,000 messages of 4 KiB and 200 of 1 MiB, one command at a time and then pipelined (a
// sliding window of 64 in flight), against FancyMail (`fmail start authd mailboxd pop3d` in its
// own process) and against Dovecot's pop3. Also: PASS+STAT time (mailbox opening) at 1,000,
// 10,000 and 100,000 messages for both; mailboxd's own IPC figures (retr pipelined over one
// connection, list of 100,000 warm); the memory growth while one 50 MiB message is RETRed.
//
// Both servers run at once, Dovecot on a copy of FancyMail's Maildirs (byte for byte the same
// files; its first login moves them to cur/ and indexes them, which must not happen under
// FancyMail), each a daemon in a session of its own, and their sessions alternate: the machine
// is shared, its load swings, and two servers timed minutes apart are timed under different
// loads (two identical servers measured that way differed by a third).
//
// BENCH_MESSAGES=500 for a shorter run. Dovecot needs root (it runs mail as `nobody`).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { IpcClient } from '../src/ipc/index.js';
import { freePort, tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const BIG_MESSAGES = Math.max(10, Math.round(MESSAGES / 10));
const WINDOW = 64;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const SETS: Array<[string, number, number]> = [
  ['alice@bench.test', MESSAGES, 4096],
  ['carol@bench.test', BIG_MESSAGES, 1 << 20],
];
const LIST_SIZES: Array<[string, number]> = [
  ['k1@bench.test', 1000],
  ['k10@bench.test', 10_000],
  ['k100@bench.test', 100_000],
];
const BIG_USER = 'bob@bench.test';
const PASSWORD = 'secret';
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

/** PopClient - just enough POP3 to time RETR: replies found by scanning for their ends. */
class PopClient {
  private chunks: Buffer[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private ended = false;
  /** While retrRun runs: every received piece goes straight to its scanner. */
  private sink: ((d: Buffer) => void) | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      if (this.sink) return this.sink(d);
      this.chunks.push(d);
      this.wake?.();
    });
    sock.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }

  static async connect(port: number): Promise<PopClient> {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    const c = new PopClient(sock);
    await c.line();
    return c;
  }

  /** next - the next received bytes, waiting for them if need be. */
  private async next(): Promise<Buffer> {
    for (;;) {
      if (this.buf.length) {
        const b = this.buf;
        this.buf = Buffer.alloc(0);
        return b;
      }
      const c = this.chunks.shift();
      if (c) return c;
      if (this.ended) throw new Error('connection closed');
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** line - the next CRLF-ended line (a command's one-line answer), without its CRLF. */
  async line(): Promise<string> {
    const kept: Buffer[] = [];
    let last = -1; // the byte before the current piece (a CR there and an LF first make the end)
    for (;;) {
      const piece = await this.next();
      for (let lf = piece.indexOf(10); lf >= 0; lf = piece.indexOf(10, lf + 1)) {
        if (lf > 0 ? piece[lf - 1] !== 13 : last !== 13) continue;
        this.buf = piece.subarray(lf + 1);
        kept.push(piece.subarray(0, lf + 1));
        return Buffer.concat(kept).toString('latin1').slice(0, -2);
      }
      kept.push(piece);
      last = piece[piece.length - 1] ?? last;
    }
  }

  /**
   * retrRun - RETR 1..COUNT with WINDOW commands in flight (1: one by one), scanning replies in
   * the data events themselves: per piece received, the replies it completes are counted and the
   * commands that refill the window go out in one write, as an efficient client (mpop) does.
   * The client must cost little next to the server, or the benchmark times the client: with a
   * promise chain and a copy per piece it was busy for nearly all of a pipelined run.
   * Returns the reply bytes after the status lines (stuffed bodies with their `.`).
   */
  retrRun(count: number, window: number): Promise<number> {
    if (this.buf.length || this.chunks.length) throw new Error('unread bytes before RETR');
    const scan = new RetrScanner();
    let sent = 0;
    const send = (): void => {
      let batch = '';
      while (sent < count && sent - scan.replies < window) batch += `RETR ${++sent}\r\n`;
      if (batch) this.sock.write(batch);
    };
    return new Promise<number>((resolve, reject) => {
      const finish = (err?: Error): void => {
        this.sink = null;
        this.sock.off('close', closed);
        if (err) reject(err);
        else resolve(scan.bodyBytes);
      };
      const closed = (): void => finish(new Error('connection closed'));
      this.sock.on('close', closed);
      this.sink = (d) => {
        const rest = scan.feed(d, count);
        if (scan.failed) return finish(new Error(`RETR: ${scan.failed}`));
        if (scan.replies < count) return send();
        if (rest < d.length) this.buf = d.subarray(rest);
        finish();
      };
      send();
    });
  }

  async cmd(line: string): Promise<string> {
    this.sock.write(line + '\r\n');
    return this.line();
  }

  write(s: string): void {
    this.sock.write(s);
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * RetrScanner - RETR replies counted as their bytes arrive, in any pieces: a status line, then a
 * body up to CRLF.CRLF. Each byte is looked at once by indexOf; only the few bytes around a
 * piece boundary are ever copied.
 */
class RetrScanner {
  replies = 0;
  bodyBytes = 0;
  failed = '';
  private inBody = false;
  /** The status line's first bytes (to check +OK), and the body's last bytes before this piece. */
  private head = '';
  private tail: Buffer = EMPTY;

  /** feed - scan PIECE; stops after the MAX-th reply; returns where the scan stopped. */
  feed(piece: Buffer, max: number): number {
    let at = 0;
    while (at < piece.length && this.replies < max && !this.failed) {
      if (!this.inBody) {
        if (this.head.length < 3) this.head += piece.toString('latin1', at, Math.min(piece.length, at + 3 - this.head.length));
        const lf = piece.indexOf(10, at);
        if (lf < 0) return piece.length;
        if (!this.head.startsWith('+OK')) {
          this.failed = this.head + piece.toString('latin1', at, lf);
          return lf + 1;
        }
        at = lf + 1;
        this.inBody = true;
        this.tail = CRLF; // the status line's CRLF may begin the end marker (an empty body)
        continue;
      }
      const end = this.findEnd(piece, at);
      if (end < 0) {
        this.bodyBytes += piece.length - at;
        const last = piece.subarray(Math.max(at, piece.length - (END.length - 1)));
        this.tail = Buffer.concat([this.tail, last]).subarray(-(END.length - 1));
        return piece.length;
      }
      this.bodyBytes += end - at;
      this.tail = EMPTY;
      at = end;
      this.replies++;
      this.inBody = false;
      this.head = '';
    }
    return at;
  }

  /** findEnd - the index just past CRLF.CRLF in PIECE from AT (it may begin in the tail), or -1. */
  private findEnd(piece: Buffer, at: number): number {
    if (this.tail.length) {
      const seam = Buffer.concat([this.tail, piece.subarray(at, at + END.length - 1)]);
      const i = seam.indexOf(END);
      if (i >= 0) return at + i + END.length - (seam.length - Math.min(piece.length - at, END.length - 1));
    }
    const i = piece.indexOf(END, at);
    return i < 0 ? -1 : i + END.length;
  }
}

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const END = Buffer.from('\r\n.\r\n');

interface Figures {
  seqS: number;
  pipeS: number;
  bytes: number;
  count: number;
}

/** login - connect, USER/PASS; the time from PASS to the STAT answer (mailbox opening + STAT). */
async function login(port: number, user: string): Promise<{ c: PopClient; count: number; statMs: number }> {
  const c = await PopClient.connect(port);
  const u = await c.cmd(`USER ${user}`);
  const t0 = process.hrtime.bigint();
  const p = await c.cmd(`PASS ${PASSWORD}`);
  if (!u.startsWith('+OK') || !p.startsWith('+OK')) throw new Error(`login: ${u} / ${p}`);
  const stat = await c.cmd('STAT');
  const statMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { c, count: Number(stat.split(' ')[1]), statMs };
}

/** retrAll - log in, RETR 1..N one by one, then again pipelined; QUIT without deleting. */
async function retrAll(port: number, user: string, expected: number): Promise<Figures> {
  const { c, count } = await login(port, user);
  if (count !== expected) throw new Error(`expected ${expected} messages, STAT says ${count}`);
  let t0 = process.hrtime.bigint();
  const bytes = await c.retrRun(count, 1);
  const seqS = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  // A sliding window: WINDOW commands in flight all the time.
  const pipeBytes = await c.retrRun(count, WINDOW);
  if (pipeBytes !== bytes) throw new Error(`pipelined RETRs gave ${pipeBytes} bytes, one by one ${bytes}`);
  const pipeS = Number(process.hrtime.bigint() - t0) / 1e9;
  await c.cmd('QUIT');
  c.close();
  return { seqS, pipeS, bytes, count };
}

/**
 * sessions - RUNS sessions of retrAll on each server, the servers taking turns; every session's
 * figures, per server.
 */
async function sessions(ports: number[], user: string, expected: number): Promise<Figures[][]> {
  const all: Figures[][] = ports.map(() => []);
  for (let i = 0; i < RUNS; i++) {
    for (let k = 0; k < ports.length; k++) all[k]!.push(await retrAll(ports[k]!, user, expected));
  }
  return all;
}

/**
 * summary - the best session time of each column (the machine is shared, and most of its noise
 * only slows) and the median one (a one-by-one session can also be lucky: when the scheduler
 * keeps client and server on one CPU, a round trip needs no cross-CPU wake-up, and one such
 * session of Dovecot's ran at twice its usual rate).
 */
function summary(runs: Figures[]): { best: Figures; median: Figures } {
  const pick = (key: 'seqS' | 'pipeS', at: (sorted: number[]) => number): number => at(runs.map((r) => r[key]).sort((a, b) => a - b));
  const first = (v: number[]): number => v[0]!;
  const middle = (v: number[]): number => (v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2);
  const base = runs[0]!;
  return {
    best: { ...base, seqS: pick('seqS', first), pipeS: pick('pipeS', first) },
    median: { ...base, seqS: pick('seqS', middle), pipeS: pick('pipeS', middle) },
  };
}

/** statTimes - PASS+STAT time per mailbox size and server (warm: the first login is not counted), the servers taking turns. */
async function statTimes(ports: number[]): Promise<number[][]> {
  const out: number[][] = ports.map(() => []);
  for (const [user] of LIST_SIZES) {
    const best = ports.map(() => Infinity);
    for (let i = 0; i < 5; i++) {
      for (let k = 0; k < ports.length; k++) {
        const { c, statMs } = await login(ports[k]!, user);
        await c.cmd('QUIT');
        c.close();
        if (i > 0) best[k] = Math.min(best[k]!, statMs);
      }
    }
    best.forEach((b, k) => out[k]!.push(b));
  }
  return out;
}

function line(label: string, count: number, bytes: number, s: number): string {
  return `${label} ${Math.round(count / s).toLocaleString('en-US').padStart(6)} msg/s ${(bytes / s / 1e6).toFixed(1).padStart(6)} MB/s (${s.toFixed(2)} s)`;
}

function report(name: string, f: Figures | null): void {
  if (!f) return void console.log(`  ${name.padEnd(10)} n/a`);
  console.log(`  ${name.padEnd(10)} ${line('one by one:', f.count, f.bytes, f.seqS)}   ${line(`pipelined x${WINDOW}:`, f.count, f.bytes, f.pipeS)}`);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function startFancyMail(dir: string): Promise<{ child: ChildProcess; pop3: number }> {
  const pop3 = await freePort();
  const toml = [
    `data_dir = ${JSON.stringify(dir)}`,
    'hostname = "mx.bench.test"',
    '[log]',
    'level = "info"',
    '[metrics]',
    'listen = ""',
    '[ipc]',
    ...['authd', 'queued', 'smtp_out', 'mailboxd', 'router', 'imapd'].map((k) => `${k} = "unix://${dir}/${k}.sock"`),
    '[pop3d]',
    'host = "127.0.0.1"',
    `port = ${pop3}`,
    'pop3s_port = -1',
  ].join('\n');
  const cfgFile = path.join(dir, 'fmail.toml');
  writeFileSync(cfgFile, toml + '\n');
  // FMAIL_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") as for the tests' spawned fmail.
  const nodeArgs = process.env.FMAIL_NODE_ARGS ? process.env.FMAIL_NODE_ARGS.split(' ') : [];
  // In a session of its own (detached: setsid), as a service runs and as the daemonised Dovecot
  // does: with the kernel's autogroup scheduling a session is one CPU share, and otherwise
  // FancyMail would share the benchmark client's while Dovecot had one to itself.
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'bin/fmail.js'), 'start', 'authd', 'mailboxd', 'pop3d', '-c', cfgFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  // Not in our process group any more: a ^C or kill of the benchmark must end it too.
  const stop = (): void => void child.kill('SIGTERM');
  process.once('exit', stop);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => (stop(), process.exit(1)));
  // Its log is read to the end (a pipe nobody reads would stall the server), 'running' waited for.
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (seen.length < 1e6) seen += d.toString();
      if (seen.includes('running')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`fmail exited: ${code}`)));
  });
  return { child, pop3 };
}

/** mailboxdClient - an IPC client to the benchmark's mailboxd, with the secret fmail start made. */
function mailboxdClient(dir: string): IpcClient {
  return new IpcClient(`unix://${dir}/mailboxd.sock`, { secret: readFileSync(path.join(dir, 'ipc.secret'), 'utf8').trim() });
}

/** message - SIZE bytes of plain text, some lines starting with a dot (stuffed by POP3). */
function message(user: string, i: number, size: number): Buffer {
  const head = `From: bench@remote.test\r\nTo: ${user}\r\nSubject: message ${i}\r\nMessage-ID: <${i}@bench.test>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog. 0123456789 .........\r\n';
  const parts = [head];
  let len = head.length;
  for (let k = 0; len + line.length <= size - 2; k++) {
    const l = k % 7 === 0 ? '.' + line.slice(1) : line;
    parts.push(l);
    len += l.length;
  }
  return Buffer.from(parts.join('').padEnd(size - 2, 'x') + '\r\n');
}

/** fill - the RETR sets through mailboxd's `store` (4 clients at once); list-size mailboxes written on disk. */
async function fill(dir: string): Promise<void> {
  for (const [user, count, size] of SETS) {
    const clients = Array.from({ length: 4 }, () => mailboxdClient(dir));
    let next = 1;
    await Promise.all(
      clients.map(async (c) => {
        while (next <= count) {
          const data = message(user, next++, size);
          const r = await c.store('store', [user, user, String(data.length)], data);
          if (!r.ok) throw new Error(`store: ${r.params.join(' ')}`);
        }
        c.close();
      }),
    );
  }
  // Big mailboxes made directly on disk with Dovecot-style names, as another MDA would.
  const small = 'Subject: x\r\n\r\nbody\r\n';
  for (const [user, count] of LIST_SIZES) {
    const newDir = path.join(dir, 'mail', user, 'new');
    for (const sub of ['tmp', 'new', 'cur']) mkdirSync(path.join(dir, 'mail', user, sub), { recursive: true });
    for (let i = 0; i < count; i++) writeFileSync(path.join(newDir, `${1700000000 + Math.floor(i / 1000)}.M${i % 1000}P1Q${i}.bench,S=${small.length}`), small);
  }
}

/** rawListMs - `list: USER` over a bare socket: the time until the whole answer is in (best of 5). */
async function rawListMs(dir: string, user: string): Promise<number> {
  const sock = net.connect(path.join(dir, 'mailboxd.sock'));
  await once(sock, 'connect');
  const secret = readFileSync(path.join(dir, 'ipc.secret'), 'utf8').trim();
  let tail = '';
  let wake: (() => void) | null = null;
  sock.on('data', (d: Buffer) => {
    tail = (tail + d.toString('latin1', Math.max(0, d.length - 16))).slice(-16);
    wake?.();
  });
  const until = async (end: string): Promise<void> => {
    while (!tail.endsWith(end)) await new Promise<void>((r) => (wake = r));
    tail = '';
  };
  sock.write(`hello: ${secret}\r\n`);
  await until('ok\r\n');
  let best = Infinity;
  for (let i = 0; i < 6; i++) {
    const t0 = process.hrtime.bigint();
    sock.write(`list: ${user}\r\n`);
    await until('\r\nok\r\n');
    if (i > 0) best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  sock.destroy();
  return best;
}

/** mailboxdAlone - mailboxd's own IPC: `retr` one by one and 64 in flight; `list` of 100,000 warm. */
async function mailboxdAlone(dir: string): Promise<string> {
  const [user, count] = SETS[0]!;
  const c = mailboxdClient(dir);
  await c.requestList('list', [user]);
  let t0 = process.hrtime.bigint();
  for (let i = 1; i <= count; i++) {
    const r = await c.requestRaw('retr', [user, String(i)]);
    if (!r.reply.ok) throw new Error(`retr ${i}: ${r.reply.params.join(' ')}`);
  }
  const seq = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  let next = 1;
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next <= count) {
        const r = await c.requestRaw('retr', [user, String(next++)]);
        if (!r.reply.ok) throw new Error(`retr: ${r.reply.params.join(' ')}`);
      }
    }),
  );
  const pipe = Number(process.hrtime.bigint() - t0) / 1e9;
  const [bigUser] = LIST_SIZES[2]!;
  await c.requestList('list', [bigUser]);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    const l = await c.requestList('list', [bigUser]);
    if (l.items.length !== LIST_SIZES[2]![1]) throw new Error(`list: ${l.items.length}`);
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e6);
  }
  c.close();
  const wire = await rawListMs(dir, bigUser);
  return `list of ${LIST_SIZES[2]![1].toLocaleString('en-US')} on the wire (request to last byte, no client parsing; best of 5) ${wire.toFixed(0)} ms; IPC retr 4 KiB one by one ${Math.round(count / seq).toLocaleString('en-US')} msg/s, ${WINDOW} in flight ${Math.round(count / pipe).toLocaleString('en-US')} msg/s; the same list through IpcClient (parsed into messages, warm, best of 5) ${best.toFixed(0)} ms`;
}

/** bigRetrMemory - peak RSS growth of the fmail process while a 50 MiB message is RETRed. */
async function bigRetrMemory(dir: string, fm: { child: ChildProcess; pop3: number }): Promise<string> {
  const big = Buffer.alloc(50 << 20, 'A long line of text for the big message ...................................\r\n');
  const ipc = mailboxdClient(dir);
  const r = await ipc.store('store', [BIG_USER, BIG_USER, String(big.length)], big);
  ipc.close();
  if (!r.ok) return `store failed: ${r.params.join(' ')}`;
  await new Promise((res) => setTimeout(res, 500));
  const pid = fm.child.pid!;
  const base = rssKiB(pid);
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, rssKiB(pid))), 20);
  const c = await PopClient.connect(fm.pop3);
  await c.cmd(`USER ${BIG_USER}`);
  await c.cmd(`PASS ${PASSWORD}`);
  const t0 = Date.now();
  const size = await c.retrRun(1, 1);
  const s = (Date.now() - t0) / 1000;
  await c.cmd('QUIT');
  c.close();
  clearInterval(timer);
  return `${(size / 1e6).toFixed(1)} MB in ${s.toFixed(2)} s (${(size / s / 1e6).toFixed(0)} MB/s); fmail RSS ${Math.round(base / 1024)} MiB before, peak +${Math.round((peak - base) / 1024)} MiB during`;
}

/** startDovecot - Dovecot's pop3 on the Maildirs under MAILDIRS (users as SETS and LIST_SIZES), first logins done; null if it cannot run here. */
async function startDovecot(dir: string, maildirs: string): Promise<{ port: number; stop(): void } | null> {
  if (process.getuid?.() !== 0 || spawnSync('sh', ['-c', 'command -v dovecot'], { stdio: 'ignore' }).status !== 0) {
    console.log('  Dovecot: skipped (needs root and the dovecot-pop3d package)');
    return null;
  }
  const port = await freePort();
  for (const d of ['run', 'state', 'home']) mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(path.join(dir, 'passwd'), [...SETS, ...LIST_SIZES].map(([u]) => `${u}:{PLAIN}${PASSWORD}\n`).join(''));
  // Dovecot will not run mail processes as root: its Maildirs are handed to `nobody`.
  spawnSync('chown', ['-R', '65534:65534', maildirs]);
  const conf = path.join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    [
      `base_dir = ${dir}/run`,
      `state_dir = ${dir}/state`,
      'protocols = pop3',
      'listen = 127.0.0.1',
      'ssl = no',
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain',
      'default_internal_user = root',
      'default_internal_group = root',
      'default_login_user = dovenull',
      `mail_location = maildir:${maildirs}/%u`,
      `log_path = ${dir}/dovecot.log`,
      'pop3_uidl_format = %08Xu%08Xv',
      `passdb {\n  driver = passwd-file\n  args = ${dir}/passwd\n}`,
      `userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=${dir}/home/%u\n}`,
      `service pop3-login {\n  inet_listener pop3 {\n    port = ${port}\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}`,
      'service imap-login {\n  inet_listener imap {\n    port = 0\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}',
      '',
    ].join('\n'),
  );
  // stdio ignored: the daemonised master keeps inherited pipes open, and spawnSync would wait.
  const start = spawnSync('dovecot', ['-c', conf], { stdio: 'ignore', timeout: 30_000 });
  if (start.status !== 0) {
    console.log(`  Dovecot: did not start (exit ${start.status}); see ${dir}/dovecot.log`);
    return null;
  }
  const stop = (): void => void spawnSync('dovecot', ['-c', conf, 'stop'], { stdio: 'ignore', timeout: 30_000 });
  try {
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
        s.on('error', () => resolve(false));
      });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // First login indexes the Maildir (moves new/ to cur/): not part of the timing.
    for (const [user] of [...SETS, ...LIST_SIZES]) {
      const { c } = await login(port, user);
      await c.cmd('QUIT');
      c.close();
    }
  } catch (err) {
    stop();
    throw err;
  }
  return { port, stop };
}

const tmp = tempDir('fmail-pop3d-bench-');
try {
  chmodSync(tmp.dir, 0o755);
  const fmDir = path.join(tmp.dir, 'fancymail');
  mkdirSync(fmDir, { recursive: true });
  chmodSync(fmDir, 0o755);
  writeFileSync(path.join(fmDir, 'users'), [...SETS, ...LIST_SIZES, [BIG_USER]].map(([u]) => `${u}:{PLAIN}${PASSWORD}::::::\n`).join(''));
  console.log(`pop3d: one client, USER/PASS, RETR every message one by one, then pipelined (${WINDOW} in flight), no TLS, loopback; ${RUNS} sessions each, FancyMail's and Dovecot's sessions taking turns; the best and the median session`);
  const fm = await startFancyMail(fmDir);
  const fmSets: Figures[][] = [];
  const dvSets: Figures[][] = [];
  let fmStats: number[] = [];
  let dvStats: number[] = [];
  let memory = '';
  let floor = '';
  try {
    await fill(fmDir);
    // Warm-up login (JIT, first list), then the timed runs.
    for (const [user, count] of SETS) await retrAll(fm.pop3, user, count).catch(() => null);
    // Dovecot's copy of the Maildirs (fmail start keeps its data folder 0700; the copy is Dovecot's).
    const dvMail = path.join(tmp.dir, 'dovecot-mail');
    spawnSync('cp', ['-a', path.join(fmDir, 'mail'), dvMail]);
    const dv = await startDovecot(path.join(tmp.dir, 'dovecot'), dvMail);
    // The fixtures (a gigabyte of small files, written twice) go to disk now, not during the timing.
    spawnSync('sync', { stdio: 'ignore', timeout: 120_000 });
    try {
      const ports = dv ? [fm.pop3, dv.port] : [fm.pop3];
      for (const [user, count] of SETS) {
        const [f = [], d = []] = await sessions(ports, user, count);
        fmSets.push(f);
        dvSets.push(d);
      }
      [fmStats = [], dvStats = []] = await statTimes(ports);
    } finally {
      dv?.stop();
    }
    floor = await mailboxdAlone(fmDir);
    memory = await bigRetrMemory(fmDir, fm);
  } finally {
    fm.child.kill('SIGTERM');
    await once(fm.child, 'exit');
  }
  for (let i = 0; i < SETS.length; i++) {
    const [, count, size] = SETS[i]!;
    console.log(`${count} x ${size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`}:`);
    const f = fmSets[i]?.length ? summary(fmSets[i]!) : null;
    const d = dvSets[i]?.length ? summary(dvSets[i]!) : null;
    for (const kind of ['best', 'median'] as const) {
      console.log(` ${kind} session:`);
      report('FancyMail', f?.[kind] ?? null);
      report('Dovecot', d?.[kind] ?? null);
      if (f && d) console.log(`  ratio FancyMail/Dovecot (rate): one by one ${(d[kind].seqS / f[kind].seqS).toFixed(2)}x, pipelined ${(d[kind].pipeS / f[kind].pipeS).toFixed(2)}x`);
    }
    const rates = (runs: Figures[] | undefined, key: 'seqS' | 'pipeS'): string => (runs ?? []).map((r) => `${(count / r[key] / 1000).toFixed(1)}k`).join(' ');
    console.log(`  every session, msg/s, one by one: FancyMail ${rates(fmSets[i], 'seqS')}; Dovecot ${rates(dvSets[i], 'seqS')}`);
    console.log(`  every session, msg/s, pipelined: FancyMail ${rates(fmSets[i], 'pipeS')}; Dovecot ${rates(dvSets[i], 'pipeS')}`);
  }
  console.log('PASS+STAT (opening the mailbox, warm, best of 4):');
  for (let i = 0; i < LIST_SIZES.length; i++) {
    const n = LIST_SIZES[i]![1].toLocaleString('en-US').padStart(7);
    const f = fmStats[i];
    const d = dvStats[i];
    console.log(`  ${n} messages: FancyMail ${f === undefined ? 'n/a' : `${f.toFixed(1)} ms`}, Dovecot ${d === undefined ? 'n/a' : `${d.toFixed(1)} ms`}${f && d ? ` (FancyMail takes ${(f / d).toFixed(2)}x Dovecot's time)` : ''}`);
  }
  if (floor) console.log(`mailboxd alone: ${floor}`);
  console.log(`50 MiB RETR (FancyMail): ${memory}`);
} finally {
  tmp.cleanup();
}
