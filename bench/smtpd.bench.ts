// smtpd throughput: Postfix's smtp-source (20 parallel sessions, 10,000 messages of 4 KiB,
// one message per connection) against smtpd + the real queued (durable: fsync per message)
// + authd, all in this process. Prints messages/s accepted (250 after push).
// BENCH_MESSAGES overrides the message count.

import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startSystem } from '../src/cli/start.js';
import { silentLogger } from '../src/shared/log.js';
import { testConfig } from '../test/helpers/config.js';
import { tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000);
const SESSIONS = 20;
const SIZE = 4096;

if (spawnSync('sh', ['-c', 'command -v smtp-source'], { stdio: 'ignore' }).status !== 0) {
  console.log('smtp-source not found (Debian package postfix): skipped');
  process.exit(0);
}

const tmp = tempDir('fmail-bench-smtpd-');
writeFileSync(path.join(tmp.dir, 'users'), 'alice@example.test:{PLAIN}secret::::::\n');
const config = testConfig(tmp.dir, { smtpd: { submission_port: -1, submissions_port: -1 }, log: { level: 'silent' } });
const tStart = Date.now();
const sys = await startSystem(config, silentLogger(), ['authd', 'queued', 'smtpd']);
console.log(`(start ${Date.now() - tStart} ms)`);
const addr = sys.servers.find((s) => s.name === 'smtpd')!.addresses.smtp!;

const args = ['-s', String(SESSIONS), '-m', String(MESSAGES), '-l', String(SIZE), '-f', 'sender@example.net', '-t', 'alice@example.test', addr];
console.log(`smtp-source ${args.join(' ')}  (smtpd + queued durable + authd in one process)`);
const t0 = process.hrtime.bigint();
const child = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
let stderr = '';
child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

const queuedFiles = readdirSync(path.join(tmp.dir, 'queue')).length ? countFiles(path.join(tmp.dir, 'queue')) : 0;
console.log(`smtp-source exit ${code}${stderr ? `, stderr: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}` : ''}`);
console.log(`${MESSAGES} messages of ${SIZE} bytes in ${seconds.toFixed(2)} s: ${(MESSAGES / seconds).toFixed(0)} messages/s accepted`);
console.log(`queue files on disk afterwards: ${queuedFiles}`);
console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);

let t = Date.now();
await sys.stop();
const stopMs = Date.now() - t;
console.log(`(stop ${stopMs} ms)`);
// Removing 10,000 spool files takes half a minute on a busy disk: leave it to a detached rm.
spawn('rm', ['-rf', tmp.dir], { detached: true, stdio: 'ignore' }).unref();

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(path.join(dir, e.name));
    else if (e.isFile() && !e.name.startsWith('.')) n++;
  }
  return n;
}
