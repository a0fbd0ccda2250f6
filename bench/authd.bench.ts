// authd: `verify` and `auth` requests/s over IPC (Unix socket, authd in its own process),
// with the default Argon2id cost; plus the time one hash takes for each scheme we verify.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { argon2Params } from '../src/authd/files.js';
import { start } from '../src/authd/index.js';
import { hashPassword, verifyPassword } from '../src/authd/password.js';
import { stopCryptPool } from '../src/authd/crypt-pool.js';
import { IpcClient } from '../src/ipc/index.js';
import { silentLogger } from '../src/shared/log.js';
import { testClient, testConfig } from '../test/helpers/config.js';
import { tempDir } from '../test/helpers/tmp.js';

const DURATION_MS = Number(process.env.BENCH_MS ?? 4000);
const USERS = 1000;

async function rate(clients: IpcClient[], until: number, one: (c: IpcClient, i: number) => Promise<unknown>, depth: number): Promise<number> {
  const start = Date.now();
  const counts = await Promise.all(
    clients.map(async (c) => {
      let n = 0;
      while (Date.now() < until) {
        await Promise.all(Array.from({ length: depth }, (_, k) => one(c, n + k)));
        n += depth;
      }
      return n;
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / ((Date.now() - start) / 1000);
}

async function median(n: number, f: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)]!;
}

if (process.argv[2] === '--serve') {
  const dir = process.argv[3]!;
  const config = testConfig(dir, { authd: { max_failures: 1_000_000 } });
  const server = await start({ config, logger: silentLogger() });
  process.stdout.write(JSON.stringify({ ipc: server.addresses.ipc }) + '\n');
} else {
  const tmp = tempDir('fmail-bench-authd-');
  const config = testConfig(tmp.dir);
  const p = argon2Params(config);
  const hash = await hashPassword('bench password', p);
  let users = '';
  for (let i = 0; i < USERS; i++) users += `user${i}@bench.test:${i === 0 ? hash : '{PLAIN}x'}::::::\n`;
  writeFileSync(path.join(tmp.dir, 'users'), users);
  writeFileSync(path.join(tmp.dir, 'aliases'), 'team@bench.test: user1@bench.test, user2@bench.test\n');

  console.log(`Argon2id default: m=${p.memoryKib} KiB, t=${p.timeCost}, p=${p.parallelism}`);
  console.log(`  hash   ${(await median(9, () => hashPassword('x', p))).toFixed(1)} ms (median of 9, in process)`);
  console.log(`  verify ${(await median(9, () => verifyPassword(hash, 'bench password'))).toFixed(1)} ms`);
  const sha = '{SHA512-CRYPT}$6$tHSHqCWhd1wNHfYy$Z4lingQAgygvATLyP.ZFBlnJFsvwoYfLDhVeY9VKtj3b74oqN0slxAvrP/5P7XWKpNH7PsQ8Mpe2/V39TcVCY/';
  console.log(`SHA512-CRYPT (5000 rounds, worker thread) verify ${(await median(9, () => verifyPassword(sha, 'secret'))).toFixed(1)} ms`);
  await stopCryptPool();

  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', tmp.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    const { ipc } = JSON.parse(line) as { ipc: string };
    console.log(`authd in its own process on ${ipc.replace(tmp.dir, '$TMP')}, ${USERS} users, ${DURATION_MS} ms per figure`);

    const verify = (c: IpcClient, i: number) => c.request('verify', [`user${i % USERS}@bench.test`]);
    for (const [clients, depth] of [
      [1, 1],
      [16, 1],
      [16, 32],
    ] as const) {
      const cs = Array.from({ length: clients }, () => testClient(config, ipc));
      const r = await rate(cs, Date.now() + DURATION_MS, verify, depth);
      console.log(`  verify  ${String(clients).padStart(2)} clients x ${String(depth).padStart(2)} in flight: ${Math.round(r).toLocaleString('en')} req/s`);
      cs.forEach((c) => c.close());
    }
    const auth = async (c: IpcClient) => {
      const res = await c.request('auth', ['user0@bench.test', 'bench password']);
      if (!res.ok) throw new Error('auth failed in bench');
    };
    for (const clients of [1, 4, 16]) {
      const cs = Array.from({ length: clients }, () => testClient(config, ipc));
      const r = await rate(cs, Date.now() + DURATION_MS, auth, 1);
      console.log(`  auth    ${String(clients).padStart(2)} clients, default cost:  ${r.toFixed(1)} req/s`);
      cs.forEach((c) => c.close());
    }
    // verify while auth saturates the hash threads: the event loop must stay free.
    const authCs = Array.from({ length: 8 }, () => testClient(config, ipc));
    const vc = [testClient(config, ipc)];
    const until = Date.now() + DURATION_MS;
    const [v] = await Promise.all([rate(vc, until, verify, 1), rate(authCs, until, auth, 1)]);
    console.log(`  verify (1 client, sequential) while 8 clients auth: ${Math.round(v).toLocaleString('en')} req/s`);
    [...authCs, ...vc].forEach((c) => c.close());
  } finally {
    child.kill();
    tmp.cleanup();
  }
}
