// IPC round trips: `ping` requests/s over TCP and a Unix socket, 1 and 16 concurrent clients,
// pipelined (many in flight per connection) and strictly sequential (one at a time); then
// server and clients in one thread, over a Unix socket and as in-thread calls.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { IpcClient, IpcServer } from '../src/ipc/index.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from '../test/helpers/tmp.js';

const DURATION_MS = Number(process.env.BENCH_MS ?? 2000);

async function sequential(client: IpcClient, until: number): Promise<number> {
  let n = 0;
  while (Date.now() < until) {
    await client.request('ping');
    n++;
  }
  return n;
}

async function pipelined(client: IpcClient, until: number, depth = 64): Promise<number> {
  let n = 0;
  while (Date.now() < until) {
    await Promise.all(Array.from({ length: depth }, () => client.request('ping')));
    n += depth;
  }
  return n;
}

async function run(address: string, clients: number, mode: 'sequential' | 'pipelined', inThread = false): Promise<number> {
  const cs = Array.from({ length: clients }, () => new IpcClient(address, { inThread }));
  await Promise.all(cs.map((c) => c.request('ping')));
  const start = Date.now();
  const until = start + DURATION_MS;
  const counts = await Promise.all(cs.map((c) => (mode === 'sequential' ? sequential(c, until) : pipelined(c, until))));
  const elapsed = (Date.now() - start) / 1000;
  cs.forEach((c) => c.close());
  return counts.reduce((a, b) => a + b, 0) / elapsed;
}

// The server runs in its own process, as in production, so client and server do not share a core.
if (process.argv[2] === '--serve') {
  const server = new IpcServer({ serverName: 'bench', version: '0', logger: silentLogger(), maxConnections: 100 });
  const tcp = await server.listen('socket://127.0.0.1:0');
  const unix = await server.listen(`unix://${process.argv[3]}`);
  process.stdout.write(JSON.stringify({ tcp, unix }) + '\n');
} else {
  const tmp = tempDir('fmail-bench-');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', path.join(tmp.dir, 'bench.sock')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const { tcp, unix } = JSON.parse(line) as { tcp: string; unix: string };
  console.log(`ping round trips, server in its own process, ${DURATION_MS} ms per figure`);
  for (const [label, addr] of [['tcp ', tcp], ['unix', unix]] as const) {
    for (const clients of [1, 16]) {
      for (const mode of ['sequential', 'pipelined'] as const) {
        const rate = await run(addr, clients, mode);
        console.log(`  ${label} clients=${String(clients).padStart(2)} ${mode.padEnd(10)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} req/s`);
      }
    }
  }
  child.kill();
  // fmail start's main thread: authd, queued, router and mailboxd are clients of each other in
  // one thread. Over the socket both ends share that thread's CPU; in-thread calls skip it.
  const local = new IpcServer({ serverName: 'bench', version: '0', logger: silentLogger(), maxConnections: 100, inThread: true });
  const localAddr = await local.listen(`unix://${path.join(tmp.dir, 'local.sock')}`);
  console.log('ping round trips, server and clients in this one thread (CPU of this process per request)');
  for (const inThread of [false, true]) {
    for (const mode of ['sequential', 'pipelined'] as const) {
      const cpu = process.cpuUsage();
      const start = Date.now();
      const rate = await run(localAddr, 16, mode, inThread);
      const used = process.cpuUsage(cpu);
      const requests = (rate * (Date.now() - start)) / 1000;
      console.log(`  ${inThread ? 'in-thread' : 'unix     '} clients=16 ${mode.padEnd(10)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} req/s  ${((used.user + used.system) / requests).toFixed(1)} us CPU/request`);
    }
  }
  await local.close();
  tmp.cleanup();
}
