// Delivery throughput: messages/s from `incoming` into Maildirs (local delivery: router ->
// mailboxd) and to Postfix's smtp-sink (remote delivery: router -> smtp-out -> SMTP).
// The queue is filled first with the router stopped, then the router starts and the clock
// runs until every message is delivered. All servers in this process, Unix-socket IPC.

import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';

import { startSystem } from '../src/cli/start.js';
import { spoolMessage } from '../src/mail/spool.js';
import type { RunningServer } from '../src/shared/server-module.js';
import { testClient, testConfig } from '../test/helpers/config.js';
import { freePort, tempDir } from '../test/helpers/tmp.js';

const N = Number(process.env.BENCH_N ?? 1000);
const SIZE = Number(process.env.BENCH_SIZE ?? 4096);

function body(i: number): Buffer {
  const head = `From: <carol@remote.test>\r\nTo: <alice@example.test>\r\nSubject: bench ${i}\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <b${i}@bench>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n';
  return Buffer.from(head + line.repeat(Math.max(1, Math.ceil((SIZE - head.length) / line.length))));
}

async function run(kind: 'local' | 'remote', sinkPort: number): Promise<void> {
  const tmp = tempDir('fmail-bench-delivery-');
  writeFileSync(path.join(tmp.dir, 'users'), 'alice@example.test:{PLAIN}x::::::\n');
  const config = testConfig(tmp.dir, {
    log: { level: 'info' },
    smtp_out: { routes: { 'sink.test': `127.0.0.1:${sinkPort}` }, connection_cache_s: 5 },
    router: { concurrency: Number(process.env.BENCH_CONCURRENCY ?? 8) },
  });
  let sent = 0;
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _e, cb) {
        const s = chunk.toString();
        if (s.includes('"event":"smtp-out.sent"')) sent += s.split('"event":"smtp-out.sent"').length - 1;
        cb();
      },
    }),
  );
  const system = await startSystem(config, logger, ['authd', 'queued', 'mailboxd', 'smtp-out']);
  const queued = testClient(config, config.ipc.queued);
  const rcpt = kind === 'local' ? 'alice@example.test' : 'bob@sink.test';
  const fillStart = Date.now();
  for (let i = 0; i < N; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, N - i) }, (_, j) =>
        spoolMessage(queued, 'incoming', { qid: '', from: 'carol@remote.test', rcpt: [rcpt], client: '127.0.0.1', helo: 'b', auth: '', time: new Date().toISOString() }, body(i + j)),
      ),
    );
  }
  const fillS = (Date.now() - fillStart) / 1000;
  const { start } = await import('../src/router/index.js');
  const t0 = Date.now();
  const router: RunningServer = await start({ config, logger: logger.child({ server: 'router' }) });
  const newDir = path.join(tmp.dir, 'mail', 'alice@example.test', 'new');
  const count = (): number => {
    if (kind === 'remote') return sent;
    try {
      return readdirSync(newDir).length;
    } catch {
      return 0;
    }
  };
  const deadline = Date.now() + 40_000;
  while (count() < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const secs = (Date.now() - t0) / 1000;
  const done = count();
  console.log(
    `${kind.padEnd(6)} ${done}/${N} messages of ${SIZE} B in ${secs.toFixed(2)} s = ${(done / secs).toFixed(0)} msg/s` +
      `  (queue filled at ${(N / fillS).toFixed(0)} msg/s; router concurrency ${config.router.concurrency})`,
  );
  queued.close();
  await router.close();
  await system.stop();
  tmp.cleanup();
}

const port = await freePort();
// smtp-sink refuses to run as root without -u
const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
const sink = spawn('/usr/sbin/smtp-sink', [...asRoot, `127.0.0.1:${port}`, '256'], { stdio: ['ignore', 'ignore', 'inherit'] });
await new Promise((r) => setTimeout(r, 300));
console.log(`delivery from incoming: ${N} messages per run, router + smtp-out + mailboxd + queued + authd in one process`);
try {
  await run('local', port);
  await run('remote', port);
} finally {
  sink.kill();
}
