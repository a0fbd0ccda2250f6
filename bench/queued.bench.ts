// queued: durable pushes/s (slot + write 4 KiB + fsync file + push) with 1 and 32 concurrent
// clients, against a plain loop of write+fsync+rename+dir-fsync per message on the same disk;
// then recovery time (start to ready to pop), RSS and pop latency for a large queue, measured
// at BENCH_RECOVERY_N (default 1,000,000) messages, both as pushed files (msg/, the seed's way)
// and as journal records (what `put` leaves; a cleanly closed segment). queued runs in its own
// process, as in production. BENCH_RECOVERY_KINDS=journal skips the million files.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, fsyncSync, mkdirSync, openSync, promises as fsp, renameSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { newQueueId } from '../src/mail/queue-id.js';
import { silentLogger } from '../src/shared/log.js';
import { start } from '../src/queued/index.js';
import { testClient, testConfig } from '../test/helpers/config.js';
import { tempDir } from '../test/helpers/tmp.js';

// libuv's pool runs the fsyncs; 4 threads (the default) would cap parallel file flushes at 4.
const THREADS = process.env.UV_THREADPOOL_SIZE ?? '16';
process.env.UV_THREADPOOL_SIZE = THREADS;
const DURATION_MS = Number(process.env.BENCH_MS ?? 4000);
const RECOVERY_N = Number(process.env.BENCH_RECOVERY_N ?? 1_000_000);
const RECOVERY_KINDS = (process.env.BENCH_RECOVERY_KINDS ?? 'journal,files').split(',');
const BODY = Buffer.alloc(4096, 'x');
const SELF = fileURLToPath(import.meta.url);

// Clients write their slots concurrently, as 32 smtpd sessions would (file fsyncs in parallel).
async function writeDurableAsync(file: string): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    await fh.write(BODY);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function writeDurable(file: string): void {
  const fd = openSync(file, 'w');
  writeSync(fd, BODY);
  fsyncSync(fd);
  closeSync(fd);
}

async function serve(dir: string, recover: boolean): Promise<void> {
  const t0 = process.hrtime.bigint();
  const q = await start({ config: testConfig(dir), logger: silentLogger() });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(JSON.stringify({ ipc: q.addresses.ipc, recoveryMs: ms, rssMB: process.memoryUsage().rss / 1e6, maxRssMB: process.resourceUsage().maxRSS / 1024, recover }) + '\n');
}

async function spawnQueued(dir: string): Promise<{ info: { ipc: string; recoveryMs: number; rssMB: number; maxRssMB: number }; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [SELF, '--serve', dir], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, UV_THREADPOOL_SIZE: THREADS } });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return {
    info: JSON.parse(line),
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** client - an IPC client of the queued serving DIR (its ipc.secret, as every FancyMail client). */
const client = (dir: string, ipc: string) => testClient(testConfig(dir), ipc);

async function pushes(dir: string, ipc: string, clients: number): Promise<number> {
  const cs = Array.from({ length: clients }, () => client(dir, ipc));
  let n = 0;
  const until = Date.now() + DURATION_MS;
  const t0 = Date.now();
  await Promise.all(
    cs.map(async (c) => {
      while (Date.now() < until) {
        const s = await c.request('slot', ['bench']);
        if (!s.ok) throw new Error(`slot failed: ${s.params[0]}`);
        await writeDurableAsync(s.params[0]!);
        const r = await c.request('push', ['bench', s.params[0]!]);
        if (!r.ok) throw new Error(`push failed: ${r.params[0]}`);
        n++;
      }
    }),
  );
  const rate = n / ((Date.now() - t0) / 1000);
  cs.forEach((c) => c.close());
  return rate;
}

function plainLoop(dir: string): number {
  const tmp = path.join(dir, 'plain-tmp');
  const out = path.join(dir, 'plain-new');
  mkdirSync(tmp, { recursive: true });
  mkdirSync(out, { recursive: true });
  let n = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < DURATION_MS) {
    const id = newQueueId();
    writeDurable(path.join(tmp, id));
    renameSync(path.join(tmp, id), path.join(out, id));
    const d = openSync(out, 'r');
    fsyncSync(d);
    closeSync(d);
    n++;
  }
  return n / ((Date.now() - t0) / 1000);
}

async function popMicros(dir: string, ipc: string, count: number): Promise<number> {
  const c = client(dir, ipc);
  await c.request('ping');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const r = await c.request('pop', ['big']);
    if (!r.ok) throw new Error('queue ran dry');
  }
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / count;
  c.close();
  return us;
}

// journalSegments - N records of SMALL as `put` writes them, 64 MiB segments, each closed (C).
function journalSegments(dir: string, n: number, small: Buffer, base: number): void {
  mkdirSync(dir, { recursive: true });
  const crc = (crc32(small) >>> 0).toString(16).padStart(8, '0');
  let seg = 0;
  let fd = -1;
  let size = 0;
  const parts: Buffer[] = [];
  let partBytes = 0;
  const out = (): void => {
    writeSync(fd, Buffer.concat(parts, partBytes));
    parts.length = 0;
    partBytes = 0;
  };
  for (let i = 0; i < n; i++) {
    if (fd < 0 || size > 64 * 1024 * 1024) {
      if (fd >= 0) {
        parts.push(Buffer.from('C\n'));
        partBytes += 2;
        out();
        closeSync(fd);
      }
      fd = openSync(path.join(dir, String(++seg).padStart(8, '0')), 'w');
      size = 0;
    }
    const head = Buffer.from(`P ${newQueueId(base + i)} ${small.length} ${crc}\n`, 'latin1');
    parts.push(head, small);
    partBytes += head.length + small.length;
    size += head.length + small.length;
    if (partBytes > 1 << 20) out();
  }
  parts.push(Buffer.from('C\n'));
  partBytes += 2;
  out();
  closeSync(fd);
}

async function recoveryBench(n: number, kind: string): Promise<{ recoveryMs: number; rssMB: number; maxRssMB: number; popUs: number }> {
  const t = tempDir('fmail-bench-queued-big-');
  try {
    const msg = path.join(t.dir, 'queue', 'big', 'msg');
    mkdirSync(msg, { recursive: true });
    const small = Buffer.alloc(200, 'y');
    const base = Date.now() - n;
    if (kind === 'journal') journalSegments(path.join(t.dir, 'queue', 'big', 'journal'), n, small, base);
    else for (let i = 0; i < n; i++) writeFileSync(path.join(msg, newQueueId(base + i)), small);
    const q = await spawnQueued(t.dir);
    const popUs = await popMicros(t.dir, q.info.ipc, Math.min(2000, Math.floor(n / 2)));
    await q.stop();
    return { recoveryMs: q.info.recoveryMs, rssMB: q.info.rssMB, maxRssMB: q.info.maxRssMB, popUs };
  } finally {
    t.cleanup();
  }
}

if (process.argv[2] === '--serve') {
  await serve(process.argv[3]!, true);
} else {
  const t = tempDir('fmail-bench-queued-');
  try {
    const q = await spawnQueued(t.dir);
    console.log(`durable pushes (slot + write 4 KiB + fsync + push), ${DURATION_MS} ms per figure, queued in its own process, UV_THREADPOOL_SIZE=${THREADS}`);
    for (const clients of [1, 32]) console.log(`  queued push, ${String(clients).padStart(2)} client(s): ${(await pushes(t.dir, q.info.ipc, clients)).toFixed(0).padStart(7)} msg/s`);
    await q.stop();
    console.log(`  plain loop write+fsync+rename+dir-fsync, 1 writer: ${plainLoop(t.dir).toFixed(0).padStart(7)} msg/s`);
  } finally {
    t.cleanup();
  }
  for (const kind of RECOVERY_KINDS) {
    for (const n of [1000, RECOVERY_N]) {
      const r = await recoveryBench(n, kind);
      console.log(
        `recovery of ${n.toLocaleString('en-US').padStart(9)} queued messages (${kind === 'journal' ? 'journal records' : 'msg/ files'}): ${r.recoveryMs.toFixed(0).padStart(6)} ms to ready, RSS after ${r.rssMB.toFixed(0)} MB (peak ${r.maxRssMB.toFixed(0)} MB), pop ${r.popUs.toFixed(1)} µs/round trip`,
      );
    }
  }
}
