// Memory with many idle SMTP clients: the all-in-one `fmail start` process, 10,000 connections
// open to the MX port, each having read the greeting and sent EHLO. Prints the RSS before and
// with the connections (aim: <= 200 MB).
//
// BENCH_IDLE=10000 sets the count (the file descriptor limit must allow it, on both sides).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { FMAIL, writeFmailConfig } from '../test/helpers/fmail-process.js';
import { tempDir } from '../test/helpers/tmp.js';

const COUNT = Number(process.env.BENCH_IDLE ?? 10_000);

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function openIdle(port: number): Promise<net.Socket> {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await once(sock, 'data'); // 220 greeting
  sock.write('EHLO idle.bench.test\r\n');
  await once(sock, 'data');
  return sock;
}

const tmp = tempDir('fmail-idle-');
const setup = await writeFmailConfig(path.join(tmp.dir, 'fm'));
// Raise the smtpd limits for this run (a TOML table cannot be repeated, so patch it in place).
const cfgText = readFileSync(setup.configFile, 'utf8')
  .replace('[smtpd]\n', `[smtpd]\nmax_connections = ${COUNT + 100}\nmax_connections_per_ip = ${COUNT + 100}\ncommand_timeout_s = 600\n`)
  .replace('level = "info"', 'level = "warn"');
writeFileSync(setup.configFile, cfgText);

const child = spawn(process.execPath, [FMAIL, 'start', '-c', setup.configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
for await (const line of createInterface({ input: child.stdout! })) if (line.includes('running')) break;
await new Promise((r) => setTimeout(r, 1000));
const before = rssMb(child.pid!);
const socks: net.Socket[] = [];
const started = Date.now();
try {
  for (let i = 0; i < COUNT; i += 200) {
    socks.push(...(await Promise.all(Array.from({ length: Math.min(200, COUNT - i) }, () => openIdle(setup.ports.smtp)))));
  }
  await new Promise((r) => setTimeout(r, 2000));
  const during = rssMb(child.pid!);
  console.log(`idle SMTP connections: ${socks.length} open in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`  RSS of fmail start (all servers): ${before.toFixed(0)} MB idle, ${during.toFixed(0)} MB with ${socks.length} connections`);
  console.log(`  per connection: ${(((during - before) * 1024) / socks.length).toFixed(1)} KB`);
} catch (err) {
  console.log(`idle connections: failed after ${socks.length}: ${(err as Error).message}`);
} finally {
  for (const s of socks) s.destroy();
  child.kill('SIGTERM');
  await once(child, 'exit');
  tmp.cleanup();
}
