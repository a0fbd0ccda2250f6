// queued's `put` and its journal: bytes over IPC, durable on `ok`, handed out as a file, kept
// across a restart (cache copy rebuilt), segments removed once every message in them is done,
// a torn tail ignored; `push ; synced` for a writer that synced its file itself.

import assert from 'node:assert/strict';
import { appendFileSync, closeSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import type { IpcClient } from '../../src/ipc/index.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { putMessage, startQueued } from './helpers.js';

const dirs: Array<{ cleanup(): void }> = [];
after(() => dirs.forEach((d) => d.cleanup()));

/** put - a message into QUEUE over IPC; its qid. */
const put = async (c: IpcClient, queue: string, body: Buffer): Promise<string> => path.basename(await putMessage(c, queue, body));

test('put: journaled, popped as a file, kept across a restart, segment removed when all done', async () => {
  const t = tempDir('fmail-journal-');
  dirs.push(t);
  const cfg = testConfig(t.dir);
  let q = await startQueued(cfg);
  let c = testClient(cfg, q.addresses.ipc!);
  // The last one is larger than journal.read's first read (its bytes come in two reads).
  const bodies = [...Array.from({ length: 20 }, (_, i) => Buffer.from(`message ${i}\r\n`.repeat(i + 1))), Buffer.alloc(200 * 1024, 'z')];
  const qids = await Promise.all(bodies.map((b) => put(c, 'jq', b)));
  const journal = path.join(t.dir, 'queue/jq/journal');
  assert.equal(readdirSync(journal).length, 1);
  assert.deepEqual(readdirSync(path.join(t.dir, 'queue/jq/cache')), [], 'put writes no file');
  // pop writes each message's cache copy; the leases end with the connection.
  for (let i = 0; i < bodies.length; i++) assert.ok((await c.request('pop', ['jq'])).ok);
  assert.equal(readdirSync(path.join(t.dir, 'queue/jq/cache')).length, bodies.length);
  // Restart: the same messages, in order, with their bytes (the cache copies are rewritten).
  for (const f of readdirSync(path.join(t.dir, 'queue/jq/cache'))) writeFileSync(path.join(t.dir, 'queue/jq/cache', f), 'stale');
  // A consumer of the old instance still reading its copy: the rewrite must not change it under it.
  const reader = openSync(path.join(t.dir, 'queue/jq/cache', qids[5]!), 'r');
  c.close();
  await q.close();
  q = await startQueued(cfg);
  c = testClient(cfg, q.addresses.ipc!);
  try {
    const popped: string[] = [];
    for (;;) {
      const r = await c.request('pop', ['jq']);
      if (!r.ok) break;
      popped.push(r.params[0]!);
    }
    assert.deepEqual(popped.map((p) => path.basename(p)), [...qids].sort());
    for (const p of popped) assert.deepEqual(readFileSync(p), bodies[qids.indexOf(path.basename(p))]);
    const seen = Buffer.alloc(64);
    assert.equal(seen.toString('latin1', 0, readSync(reader, seen, 0, 64, 0)), 'stale', 'the old copy was replaced by a rename, not rewritten in place');
    closeSync(reader);
    // The segment written before the restart holds them all: it goes once they are done.
    const old = readdirSync(journal).sort()[0]!;
    for (const p of popped) assert.ok((await c.request('done', ['jq', p])).ok);
    for (let i = 0; i < 100 && readdirSync(journal).includes(old); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(!readdirSync(journal).includes(old), 'finished segment removed');
    assert.deepEqual(readdirSync(path.join(t.dir, 'queue/jq/cache')), []);
  } finally {
    c.close();
    await q.close();
  }
});

test('take: the lease and the bytes in one answer, no file written; copy makes the file; done', async () => {
  const t = tempDir('fmail-journal-');
  dirs.push(t);
  const cfg = testConfig(t.dir);
  const q = await startQueued(cfg);
  const c = testClient(cfg, q.addresses.ipc!);
  const cache = path.join(t.dir, 'queue/kq/cache');
  try {
    const small = Buffer.from('small message\r\n');
    const big = Buffer.alloc(3000, 'b');
    const [qSmall, qBig] = [await put(c, 'kq', small), await put(c, 'kq', big)];
    const a = await c.requestRaw('take', ['kq', '2048']);
    assert.ok(a.reply.ok);
    assert.equal(a.reply.params[0], String(small.length));
    assert.equal(path.basename(a.reply.params[1]!), qSmall);
    assert.deepEqual(a.data, small);
    // Over MAX: the path form, its file written as pop would.
    const b = await c.requestRaw('take', ['kq', '2048']);
    assert.deepEqual(b.reply.params.slice(0, 1).concat(b.reply.params.slice(2)), ['0', 'file']);
    assert.equal(path.basename(b.reply.params[1]!), qBig);
    assert.deepEqual(readFileSync(b.reply.params[1]!), big);
    assert.deepEqual(readdirSync(cache), [qBig], 'no file for the message taken with its bytes');
    assert.equal((await c.requestRaw('take', ['kq'])).reply.ok, false, 'empty queue');
    // copy: only the leased message's own path; then it is a file there.
    assert.equal((await c.request('copy', ['kq', path.join(t.dir, 'elsewhere', qSmall)])).ok, false);
    assert.ok((await c.request('copy', ['kq', a.reply.params[1]!])).ok);
    assert.deepEqual(readFileSync(a.reply.params[1]!), small);
    for (const r of [a, b]) assert.ok((await c.request('done', ['kq', r.reply.params[1]!])).ok);
    assert.deepEqual(readdirSync(cache), []);
    assert.equal((await c.request('copy', ['kq', a.reply.params[1]!])).ok, false, 'not leased any more');
  } finally {
    c.close();
    await q.close();
  }
});

test('a torn record at the end of a segment is ignored; put refuses a path that is not an open slot', async () => {
  const t = tempDir('fmail-journal-');
  dirs.push(t);
  const cfg = testConfig(t.dir);
  let q = await startQueued(cfg);
  let c = testClient(cfg, q.addresses.ipc!);
  const kept = await put(c, 'tq', Buffer.from('kept\r\n'));
  assert.equal((await c.store('put', ['tq', '/etc/passwd', '3'], Buffer.from('abc'))).ok, false);
  c.close();
  await q.close();
  // A crash in the middle of a write: a header whose bytes never fully arrived.
  const journal = path.join(t.dir, 'queue/tq/journal');
  const seg = path.join(journal, readdirSync(journal).sort().at(-1)!);
  appendFileSync(seg, 'P 2ZZZZZZZZZZZZZZ 4096 00000000\nhalf');
  q = await startQueued(cfg);
  c = testClient(cfg, q.addresses.ipc!);
  try {
    const r = await c.request('pop', ['tq']);
    assert.ok(r.ok);
    assert.equal(path.basename(r.params[0]!), kept);
    assert.equal(readFileSync(r.params[0]!, 'utf8'), 'kept\r\n');
    assert.equal((await c.request('pop', ['tq'])).ok, false);
  } finally {
    c.close();
    await q.close();
  }
});

test('push ; synced renames without syncing again; other options are refused', async () => {
  const t = tempDir('fmail-journal-');
  dirs.push(t);
  const cfg = testConfig(t.dir);
  const q = await startQueued(cfg);
  const c = testClient(cfg, q.addresses.ipc!);
  try {
    const s = (await c.request('slot', ['sq'])).params[0]!;
    writeFileSync(s, 'synced by the writer');
    assert.equal((await c.request('push', ['sq', s, 'fast'])).ok, false);
    assert.ok((await c.request('push', ['sq', s, 'synced'])).ok);
    const p = (await c.request('pop', ['sq'])).params[0]!;
    assert.equal(readFileSync(p, 'utf8'), 'synced by the writer');
  } finally {
    c.close();
    await q.close();
  }
});
