// One vs two MX hosts in the multi-host layout (test/e2e/multihost-setup.ts: mx1, mx2 = smtpd +
// pop3d; core = queued on PostgreSQL + router + smtp-out; store = authd + mailboxd; each its own
// network namespace and data folder, IPC over TCP with a secret, queue_colocated = false).
// BENCH_SESSIONS (20) concurrent senders submit BENCH_MESSAGES (2,000) 1 KiB messages, one SMTP
// connection each, to alice: all to mx1, or alternating mx1/mx2. Timed from the first
// connection until the last message is in alice's Maildir on store. CPU ms per message per host
// (its processes' utime + stime from /proc; PostgreSQL's not counted). BENCH_RUNS (2) runs of
// each, alternating. Per message and host also: bytes sent and received over its network
// interface (namespaces only: IPC, SMTP from the senders, PostgreSQL's protocol for core), and
// PostgreSQL's WAL flushes (pg_stat_wal). BENCH_STRACE=1 adds a run with `strace -f -c` attached
// to every host's processes: fsync + fdatasync per message per host (strace slows the run; its
// rate is not comparable). Run it under `flock /tmp/fmail-bench.lock` (2 cores).

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

import pg from 'pg';

import { startPostgres } from '../test/helpers/postgres.js';
import { tempDir } from '../test/helpers/tmp.js';
import { stopAll } from '../test/e2e/multihost-net.js';
import { message, smtpSend, startLayout } from '../test/e2e/multihost-setup.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const TICK = 100; // clock ticks per second (USER_HZ on Linux)

function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
  } catch {
    return 0;
  }
}

/** bytes - what HOST sent and received over its veth so far (our end: rx = the host's tx). */
function bytes(iface: string | null): { out: number; in: number } {
  if (!iface) return { out: NaN, in: NaN };
  const read = (f: string): number => Number(readFileSync(`/sys/class/net/${iface}/statistics/${f}`, 'utf8'));
  return { out: read('rx_bytes'), in: read('tx_bytes') };
}

/** straceSyncs - attach strace to PIDS; stop() gives the fsync + fdatasync calls counted. */
function straceSyncs(pids: number[]): { stop(): Promise<number> } {
  const child: ChildProcess = spawn('strace', ['-f', '-c', '-e', 'trace=fsync,fdatasync,sync_file_range,syncfs', ...pids.flatMap((p) => ['-p', String(p)])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return {
    stop: async () => {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
      let n = 0;
      for (const m of err.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync|sync_file_range|syncfs)$/gm)) n += Number(m[1]);
      return n;
    },
  };
}

async function main(): Promise<void> {
  const tmp = tempDir('fmail-bench-multihost-');
  const pgServer = await startPostgres();
  const { netw } = await startLayout(tmp.dir, pgServer);
  const db = new pg.Client({ connectionString: pgServer.socketUrl('fmail') });
  await db.connect();
  const walSyncs = async (): Promise<number> => Number((await db.query<{ n: string }>('SELECT wal_sync AS n FROM pg_stat_wal')).rows[0]!.n);
  const mailDir = path.join(netw.hosts.get('store')!.dir, 'mail');
  const delivered = (): number => {
    let n = 0;
    if (!existsSync(mailDir)) return 0;
    for (const u of readdirSync(mailDir)) if (u.startsWith('alice')) for (const sub of ['new', 'cur']) n += readdirSync(path.join(mailDir, u, sub)).length;
    return n;
  };
  const body = `${'x'.repeat(76)}\r\n`.repeat(13);
  const hostCpu = (): Map<string, number> => new Map([...netw.hosts.values()].map((h) => [h.name, h.procs.reduce((s, p) => s + (p.pid ? cpuMs(p.pid) : 0), 0)]));
  try {
    // Warm-up (connections, JIT), not counted.
    await smtpSend(netw.hosts.get('mx1')!.addr, 2525, 'alice@example.test', message('warm', body));
    const deadline = Date.now() + 30_000;
    while (delivered() < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    console.log(`${netw.kind} layout, ${MESSAGES} messages of ~1 KiB, ${SESSIONS} senders, one connection per message`);
    const runOnce = async (label: string, mxCount: number, strace: boolean): Promise<void> => {
      const mx = [netw.hosts.get('mx1')!.addr, netw.hosts.get('mx2')!.addr].slice(0, mxCount);
      const before = delivered();
      const cpu0 = hostCpu();
      const net0 = new Map([...netw.hosts.values()].map((h) => [h.name, bytes(h.iface)]));
      const wal0 = await walSyncs();
      const tracers = strace ? new Map([...netw.hosts.values()].map((h) => [h.name, straceSyncs(h.procs.flatMap((p) => (p.pid ? [p.pid] : [])))])) : null;
      if (tracers) await new Promise((r) => setTimeout(r, 1000)); // strace attached before the first message
      const t0 = performance.now();
      let next = 0;
      let failed = 0;
      await Promise.all(
        Array.from({ length: SESSIONS }, async () => {
          for (let i = next++; i < MESSAGES; i = next++) {
            await smtpSend(mx[i % mx.length]!, 2525, 'alice@example.test', message(`b-${label}-${mxCount}-${i}`, body)).catch(() => failed++);
          }
        }),
      );
      const accepted = performance.now() - t0;
      const want = before + MESSAGES - failed;
      const end = Date.now() + 300_000;
      while (delivered() < want && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      const ms = performance.now() - t0;
      const cpu1 = hostCpu();
      const wal = (await walSyncs()) - wal0;
      const n = MESSAGES - failed;
      const per = [...cpu1].map(([h, c]) => `${h} ${((c - (cpu0.get(h) ?? 0)) / n).toFixed(2)}`).join(', ');
      console.log(
        `${label} ${mxCount} MX: ${(n / (ms / 1000)).toFixed(0)} msg/s end to end (${(ms / 1000).toFixed(2)} s; accepted in ${(accepted / 1000).toFixed(2)} s; ${failed} refused; delivered ${delivered() - before}); CPU ms/msg: ${per}`,
      );
      if (netw.kind === 'netns') {
        const traffic = [...netw.hosts.values()].map((h) => {
          const b0 = net0.get(h.name)!;
          const b1 = bytes(h.iface);
          return `${h.name} ${((b1.out - b0.out) / n / 1024).toFixed(1)}/${((b1.in - b0.in) / n / 1024).toFixed(1)}`;
        });
        console.log(`  KiB out/in per message over each host's interface: ${traffic.join(', ')}`);
      }
      console.log(`  PostgreSQL WAL flushes per message: ${(wal / n).toFixed(2)}`);
      if (tracers) {
        const syncs: string[] = [];
        for (const [h, t] of tracers) syncs.push(`${h} ${((await t.stop()) / n).toFixed(2)}`);
        console.log(`  fsync+fdatasync per message (strace -f -c): ${syncs.join(', ')}; PostgreSQL's own: see WAL flushes`);
      }
    };
    for (let run = 0; run < RUNS; run++) for (const mxCount of [1, 2]) await runOnce(`run${run + 1}`, mxCount, false);
    if (process.env.BENCH_STRACE === '1') await runOnce('strace', 1, true);
  } finally {
    await stopAll(netw).catch(() => undefined);
    netw.cleanup();
    await db.end().catch(() => undefined);
    await pgServer.cleanup();
    tmp.cleanup();
  }
}

await main();
