// `fmail queue ...` against a queued started in this process, run as the real command.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { IpcClient } from '../../src/ipc/index.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { FMAIL } from '../helpers/fmail-process.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { startQueued } from './helpers.js';

const t = tempDir('fmail-queued-cli-');
const configFile = path.join(t.dir, 'fmail.toml');
let q: RunningServer;
let c: IpcClient;

before(async () => {
  writeFileSync(configFile, `data_dir = ${JSON.stringify(t.dir)}\n[ipc]\nqueued = "unix://${t.dir}/queued.sock"\n[metrics]\nlisten = ""\n`);
  const cfg = testConfig(t.dir);
  q = await startQueued(cfg);
  c = testClient(cfg, q.addresses.ipc!);
});
after(async () => {
  c.close();
  await q.close();
  t.cleanup();
});

function fmail(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [FMAIL, ...args, '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

async function push(queue: string, body: string): Promise<string> {
  const s = (await c.request('slot', [queue])).params[0]!;
  writeFileSync(s, body);
  assert.ok((await c.request('push', [queue, s])).ok);
  return path.basename(s);
}

test('fmail queue list/show/stats/flush/requeue/delete', async () => {
  const a = await push('incoming', 'hello from a\n');
  const b = await push('incoming', 'hello from b\n');
  const pa = (await c.request('pop', ['incoming'])).params[0]!;
  assert.ok((await c.request('defer', ['incoming', pa, '3600', '451 4.4.1 mx.example.test: connection refused'])).ok);

  const list = await fmail('queue', 'list');
  assert.equal(list.code, 0, list.err);
  const rowA = list.out.split('\n').find((l) => l.startsWith(a));
  assert.match(rowA ?? '', /incoming\s+deferred\s+\d+s\s+13\s+\d{4}-\d\d-\d\dT\S+\s+1\s+451 4\.4\.1 mx\.example\.test: connection refused/);
  assert.match(list.out, new RegExp(`${b}\\s+incoming\\s+ready`));

  const show = await fmail('queue', 'show', b);
  assert.equal(show.out, 'hello from b\n');
  assert.notEqual((await fmail('queue', 'show', 'NOPE')).code, 0);

  const stats = await fmail('queue', 'stats');
  assert.match(stats.out, /incoming\s+1\s+0\s+1\s+0/);

  assert.match((await fmail('queue', 'flush')).out, /^1 deferred/);
  assert.match((await fmail('queue', 'stats')).out, /incoming\s+2\s+0\s+0\s+0/);
  const del = await fmail('queue', 'delete', b);
  assert.equal(del.code, 0, del.err);
  assert.match((await fmail('queue', 'stats')).out, /incoming\s+1\s+0\s+0\s+0/);
  const p = (await c.request('pop', ['incoming'])).params[0]!;
  assert.equal(path.basename(p), a);
  assert.equal((await fmail('queue', 'requeue', a)).code, 0);
  assert.equal(path.basename((await c.request('pop', ['incoming'])).params[0]!), a);
  const gone = await fmail('queue', 'delete', 'BBBBBBBBBBBBBBB');
  assert.equal(gone.code, 1);
  assert.match(gone.err, /no such message/);
});
