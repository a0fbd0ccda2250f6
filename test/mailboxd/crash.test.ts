// Crash test: mailboxd runs in a child process while clients store messages without pause; the
// child is killed with SIGKILL at a random moment. Afterwards no partial message may be visible
// to `list`, and every store that was answered `ok` must be there.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { start } from '../../src/mailboxd/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { fakeAuthd } from './helpers.js';

const USER = 'crash@example.com';
const ITERATIONS = 8;
const CLIENTS = 4;
const DEADLINE_MS = 35_000;

const tmp = tempDir('fmail-crash-');
after(() => (process.env.KEEP ? undefined : tmp.cleanup()));

/** message - `X-Id` and `X-Len` headers, then LEN pattern bytes, then `END id`. */
function message(id: string, len: number): Buffer {
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = 0x61 + (i % 26);
  return Buffer.concat([Buffer.from(`X-Id: ${id}\r\nX-Len: ${len}\r\n\r\n`), body, Buffer.from(`\r\nEND ${id}\r\n`)]);
}

/** check - a complete message as stored (Delivered-To first); returns its id or throws. */
function check(data: Buffer): string {
  const text = data.toString('latin1');
  const m = /^Delivered-To: crash@example\.com\r\nX-Id: (\S+)\r\nX-Len: (\d+)\r\n\r\n/.exec(text);
  assert.ok(m, `bad head: ${JSON.stringify(text.slice(0, 120))}`);
  const expected = Buffer.concat([Buffer.from(`Delivered-To: ${USER}\r\n`), message(m[1]!, Number(m[2]))]);
  assert.ok(data.equals(expected), `message ${m[1]} is partial or corrupt (${data.length} of ${expected.length} bytes)`);
  return m[1]!;
}

function startChild(configJson: string): Promise<ChildProcess> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.js');
  const child = spawn(process.execPath, [script, configJson], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('child did not start')), 20_000);
    child.stdout!.on('data', (d) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`child exited early: ${code}`)));
  });
}

test('SIGKILL during stores never leaves a partial message visible to list', async () => {
  const config = testConfig(tmp.dir);
  const raw = { data_dir: tmp.dir, log: { level: 'silent' }, metrics: { listen: '' }, ipc: { authd: config.ipc.authd, mailboxd: config.ipc.mailboxd } };
  const authd = await fakeAuthd(config, [USER]);
  const acked = new Set<string>();
  const started = Date.now();
  let inFlightAtKill = 0;
  let seq = 0;
  try {
    for (let it = 0; it < ITERATIONS && Date.now() - started < DEADLINE_MS; it++) {
      const child = await startChild(JSON.stringify(raw));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      let inFlight = 0;
      let stop = false;
      const clients = Array.from({ length: CLIENTS }, () => testClient(config, config.ipc.mailboxd, { timeoutMs: 10_000 }));
      const loops = clients.map(async (c) => {
        for (let n = 0; n < 10_000 && !stop; n++) {
          const id = `i${it}-${seq++}`;
          const body = message(id, Math.floor(Math.random() * 256 * 1024));
          inFlight++;
          try {
            const r = await c.store('store', [USER, USER, String(body.length)], body);
            if (r.ok) acked.add(id);
          } catch {
            return; // the server died under us
          } finally {
            inFlight--;
          }
        }
      });
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 350));
      inFlightAtKill += inFlight;
      child.kill('SIGKILL');
      await exited;
      stop = true;
      await Promise.all(loops);
      for (const c of clients) c.close();

      // Restart in-process and look through list + retr, as pop3d would.
      const server = await start({ config, logger: silentLogger() });
      const c = testClient(config, server.addresses.ipc!, { timeoutMs: 30_000 });
      try {
        const l = await c.requestList('list', [USER]);
        assert.equal(l.reply.ok, true, `list: ${l.reply.params[0]}`);
        const seen = new Set<string>();
        for (const item of l.items) {
          const r = await c.requestRaw('retr', [USER, item.params[0]!]);
          assert.equal(r.reply.ok, true, `retr ${item.params[0]}: ${r.reply.params[0]}`);
          assert.equal(r.data!.length, Number(item.params[1]), 'listed size is the size retr sends');
          seen.add(check(r.data!));
        }
        for (const id of acked) assert.ok(seen.has(id), `acknowledged message ${id} is missing after the crash`);
      } finally {
        c.close();
        await server.close();
      }
    }
    assert.ok(acked.size > 0, 'some stores completed');
    assert.ok(inFlightAtKill > 0, 'kills landed while stores were in progress');
  } finally {
    await authd.close();
  }
});
