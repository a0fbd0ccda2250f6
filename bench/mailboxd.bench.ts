// mailboxd benchmark: durable stores/s of 4 KiB messages with 1 and 16 clients, `list` time for a
// 100,000-message mailbox, `retr` MB/s of a 50 MiB message (and the memory it took).
// Prints figures; asserts nothing. Runs mailboxd in-process on Unix sockets in a temp folder.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { parseConfig } from '../src/config/load.js';
import { IpcClient, IpcServer, ok } from '../src/ipc/index.js';
import { start } from '../src/mailboxd/index.js';
import { ipcSecret } from '../src/shared/ipc-secret.js';
import { silentLogger } from '../src/shared/log.js';

const STORE_SECONDS = 6;
const LIST_SIZE = 100_000;

async function storeRate(addr: string, secret: string | undefined, user: string, clients: number): Promise<number> {
  const body = Buffer.alloc(4096, 'm');
  const cs = Array.from({ length: clients }, () => new IpcClient(addr, { secret }));
  const until = Date.now() + STORE_SECONDS * 1000;
  let count = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    cs.map(async (c) => {
      while (Date.now() < until) {
        const r = await c.store('store', [user, user, String(body.length)], body);
        if (!r.ok) throw new Error(`store failed: ${r.params.join(' ')}`);
        count++;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const c of cs) c.close();
  return count / secs;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fmail-bench-mbox-'));
  const sock = (n: string): string => `unix://${path.join(dir, `${n}.sock`)}`;
  const config = parseConfig({ data_dir: dir, log: { level: 'silent' }, metrics: { listen: '' }, ipc: { authd: sock('authd'), mailboxd: sock('mailboxd') }, mailboxd: { max_message_size: 64 * 1024 * 1024 } });
  const authd = new IpcServer({ serverName: 'authd', version: 'bench', logger: silentLogger() });
  authd.on('verify', { params: 1, handle: () => ok() });
  authd.on('resolve', { params: 1, handle: (ctx) => ok(ctx.params[0]!) });
  await authd.listen(config.ipc.authd);
  const server = await start({ config, logger: silentLogger() });
  const addr = server.addresses.ipc!;
  // mailboxd requires the data folder's IPC secret, as from every client.
  const secret = ipcSecret(config, { create: true });
  try {
    console.log(`data folder on ${dir} (${os.cpus().length} CPUs); every store is fsynced (file + new/)`);
    const one = await storeRate(addr, secret, 'one@bench.test', 1);
    console.log(`store 4 KiB, 1 client:    ${one.toFixed(0)} msg/s`);
    const sixteen = await storeRate(addr, secret, 'sixteen@bench.test', 16);
    console.log(`store 4 KiB, 16 clients:  ${sixteen.toFixed(0)} msg/s (one mailbox, group fsync of new/)`);

    // A 100,000-message mailbox, made directly on disk with Dovecot-style names.
    const user = 'big@bench.test';
    const newDir = path.join(dir, 'mail', user, 'new');
    for (const sub of ['tmp', 'new', 'cur']) mkdirSync(path.join(dir, 'mail', user, sub), { recursive: true });
    const msg = 'Subject: x\r\n\r\nbody\r\n';
    const t0 = Date.now();
    for (let i = 0; i < LIST_SIZE; i++) writeFileSync(path.join(newDir, `${1700000000 + Math.floor(i / 1000)}.M${i % 1000}P1Q${i}.bench,S=${msg.length}`), msg);
    console.log(`(made ${LIST_SIZE} files in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    const c = new IpcClient(addr, { timeoutMs: 120_000, secret });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = process.hrtime.bigint();
      const l = await c.requestList('list', [user]);
      times.push(Number(process.hrtime.bigint() - s) / 1e6);
      if (l.items.length !== LIST_SIZE) throw new Error(`listed ${l.items.length}`);
    }
    console.log(`list of ${LIST_SIZE} messages: ${times.map((t) => t.toFixed(0)).join(' / ')} ms (3 runs, IPC round trip included)`);

    // retr of a 50 MiB message, streamed.
    const huge = Buffer.alloc(50 * 1024 * 1024, 'h');
    const ru = 'retr@bench.test';
    await c.store('store', [ru, ru, String(huge.length)], huge);
    const rates: number[] = [];
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    for (let i = 0; i < 3; i++) {
      await c.requestList('list', [ru]);
      const s = process.hrtime.bigint();
      const r = await c.requestStream('retr', [ru, '1']);
      let got = 0;
      for await (const chunk of r.stream!) {
        got += (chunk as Buffer).length;
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
      const secs = Number(process.hrtime.bigint() - s) / 1e9;
      rates.push(got / secs / 1e6);
    }
    console.log(`retr 50 MiB: ${rates.map((r) => r.toFixed(0)).join(' / ')} MB/s (3 runs); RSS grew ${((rssPeak - rssBefore) / 1e6).toFixed(1)} MB while streaming`);
    c.close();
  } finally {
    await server.close();
    await authd.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
