// One vs two MX hosts in the multi-host layout (test/e2e/multihost-setup.ts: mx1, mx2 = smtpd +
// pop3d; core = queued on PostgreSQL + router + smtp-out; store = authd + mailboxd; each its own
// network namespace and data folder, IPC over TCP with a secret, queue_colocated = false).
// BENCH_SESSIONS (20) concurrent senders submit BENCH_MESSAGES (2,000) 1 KiB messages, one SMTP
// connection each, to alice: all to mx1, or alternating mx1/mx2. Timed from the first
// connection until the last message is in alice's Maildir on store. CPU ms per message per host
// (its processes' utime + stime from /proc; PostgreSQL's not counted). BENCH_RUNS (2) runs of
// each, alternating. Run it under `flock /tmp/fmail-bench.lock` (2 cores).

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

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

async function main(): Promise<void> {
  const tmp = tempDir('fmail-bench-multihost-');
  const pg = await startPostgres();
  const { netw } = await startLayout(tmp.dir, pg);
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
    for (let run = 0; run < RUNS; run++) {
      for (const mxCount of [1, 2]) {
        const mx = [netw.hosts.get('mx1')!.addr, netw.hosts.get('mx2')!.addr].slice(0, mxCount);
        const before = delivered();
        const cpu0 = hostCpu();
        const t0 = performance.now();
        let next = 0;
        let failed = 0;
        await Promise.all(
          Array.from({ length: SESSIONS }, async () => {
            for (let i = next++; i < MESSAGES; i = next++) {
              await smtpSend(mx[i % mx.length]!, 2525, 'alice@example.test', message(`b-${run}-${mxCount}-${i}`, body)).catch(() => failed++);
            }
          }),
        );
        const accepted = performance.now() - t0;
        const want = before + MESSAGES - failed;
        const end = Date.now() + 120_000;
        while (delivered() < want && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
        const ms = performance.now() - t0;
        const cpu1 = hostCpu();
        const per = [...cpu1].map(([h, c]) => `${h} ${((c - (cpu0.get(h) ?? 0)) / MESSAGES).toFixed(2)}`).join(', ');
        console.log(
          `${mxCount} MX: ${((MESSAGES - failed) / (ms / 1000)).toFixed(0)} msg/s end to end (${(ms / 1000).toFixed(2)} s; accepted in ${(accepted / 1000).toFixed(2)} s; ${failed} refused; delivered ${delivered() - before}); CPU ms/msg: ${per}`,
        );
      }
    }
  } finally {
    await stopAll(netw).catch(() => undefined);
    netw.cleanup();
    await pg.cleanup();
    tmp.cleanup();
  }
}

await main();
