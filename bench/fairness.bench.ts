// Fairness: does a blackholed destination slow down mail to a healthy one? 1,000 messages to a
// healthy destination (Postfix's smtp-sink) are timed alone, then mixed one for one with 1,000
// to a blackhole (accepts TCP, never greets: each session waits out connect_timeout_s), with
// the default scheduling and with the jobs-in-hand limit off (destination_jobs_limit =
// concurrency, i.e. the old behaviour). Figure: healthy messages/s in each run, and the ratio
// mixed / alone (1.0 = the dead destination costs the healthy one nothing).
//
// The messages are put straight into `outgoing` (as smtp-out's `send` does) with smtp-out
// stopped, then smtp-out starts and the clock runs: this measures smtp-out's scheduling, not
// the router, which necessarily routes the dead mail too.
//
// BENCH_N (default 1000) per destination; BENCH_TIMEOUT_S (default 30) the blackhole's wait.

import { spawn } from 'node:child_process';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';

import { startSystem } from '../src/cli/start.js';
import { spoolMessage } from '../src/mail/spool.js';
import type { RunningServer } from '../src/shared/server-module.js';
import { testClient, testConfig } from '../test/helpers/config.js';
import { freePort, tempDir } from '../test/helpers/tmp.js';

const N = Number(process.env.BENCH_N ?? 1000);
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT_S ?? 30);

function body(i: number): Buffer {
  return Buffer.from(`From: <carol@remote.test>\r\nSubject: fair ${i}\r\nMessage-ID: <f${i}@bench>\r\n\r\n${'fairness body line\r\n'.repeat(100)}`);
}

async function run(label: string, dead: boolean, jobsLimit: number | undefined, sinkPort: number, holePort: number): Promise<number> {
  const tmp = tempDir('fmail-bench-fair-');
  writeFileSync(path.join(tmp.dir, 'users'), 'alice@example.test:{PLAIN}x::::::\n');
  const config = testConfig(tmp.dir, {
    log: { level: 'info' },
    smtp_out: {
      routes: { 'healthy.test': `127.0.0.1:${sinkPort}`, 'dead.test': `127.0.0.1:${holePort}` },
      connection_cache_s: 5,
      connect_timeout_s: TIMEOUT_S,
      ...(jobsLimit ? { destination_jobs_limit: jobsLimit } : {}),
    },
  });
  let healthy = 0;
  let first = 0;
  let last = 0;
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const line of chunk.toString().split('\n')) {
          if (line.includes('"event":"smtp-out.sent"') && line.includes('@healthy.test')) {
            healthy++;
            last = Date.now();
            first ||= last;
          }
        }
        cb();
      },
    }),
  );
  const system = await startSystem(config, logger, ['authd', 'queued', 'mailboxd']);
  const queued = testClient(config, config.ipc.queued);
  const rcpts: string[] = [];
  for (let i = 0; i < N; i++) {
    if (dead) rcpts.push(`d${i}@dead.test`);
    rcpts.push(`h${i}@healthy.test`);
  }
  for (let i = 0; i < rcpts.length; i += 50) {
    await Promise.all(
      rcpts.slice(i, i + 50).map((rcpt, j) =>
        spoolMessage(queued, 'outgoing', { qid: '', from: 'carol@remote.test', rcpt: [rcpt], client: '127.0.0.1', helo: 'b', auth: '', time: new Date().toISOString() }, body(i + j)),
      ),
    );
  }
  const { start } = await import('../src/smtp-out/index.js');
  const t0 = Date.now();
  const smtpOut: RunningServer = await start({ config, logger: logger.child({ server: 'smtp-out' }) });
  const deadline = Date.now() + 120_000;
  while (healthy < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const secs = ((last || Date.now()) - t0) / 1000;
  const rate = healthy / secs;
  console.log(`${label.padEnd(44)} healthy ${healthy}/${N} in ${secs.toFixed(2)} s = ${rate.toFixed(0)} msg/s`);
  queued.close();
  await smtpOut.close();
  await system.stop();
  tmp.cleanup();
  return rate;
}

const sinkPort = await freePort();
const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
const sink = spawn('/usr/sbin/smtp-sink', [...asRoot, `127.0.0.1:${sinkPort}`, '256'], { stdio: ['ignore', 'ignore', 'inherit'] });
// The blackhole: takes the connection and says nothing, like a host that drops our packets
// after the handshake (the client waits out its greeting timeout).
const held: net.Socket[] = [];
const hole = net.createServer((s) => {
  held.push(s);
  s.on('error', () => {});
});
await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
const holePort = (hole.address() as net.AddressInfo).port;
await new Promise((r) => setTimeout(r, 300));
console.log(`fairness: ${N} messages to healthy.test (smtp-sink) alone, then mixed 1:1 with ${N} to a blackhole (greeting timeout ${TIMEOUT_S} s)`);
try {
  const alone = await run('healthy alone', false, undefined, sinkPort, holePort);
  const mixed = await run('mixed with blackhole (default scheduling)', true, undefined, sinkPort, holePort);
  const old = await run('mixed, no jobs-in-hand limit (before)', true, 100, sinkPort, holePort);
  console.log(`ratio mixed/alone: ${(mixed / alone).toFixed(2)} (default scheduling), ${(old / alone).toFixed(2)} (without the per-destination limit)`);
} finally {
  sink.kill();
  for (const s of held) s.destroy();
  hole.close();
}
