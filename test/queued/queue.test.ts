// queued behaviour: FIFO, leases, done/defer, bad input, group commit, recovery, alerts, admin.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { IpcClient } from '../../src/ipc/index.js';
import type { Config } from '../../src/config/schema.js';
import { dirSyncCount } from '../../src/shared/durable.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { startQueued, startSubscriber } from './helpers.js';

const dirs: Array<{ cleanup(): void }> = [];
after(() => dirs.forEach((d) => d.cleanup()));

async function setup(overrides: Parameters<typeof testConfig>[1] = {}): Promise<{ cfg: Config; q: RunningServer; c: IpcClient; dir: string }> {
  const t = tempDir('fmail-queued-');
  dirs.push(t);
  const cfg = testConfig(t.dir, overrides);
  const q = await startQueued(cfg);
  return { cfg, q, c: testClient(cfg, q.addresses.ipc!), dir: t.dir };
}

async function pushOne(c: IpcClient, queue: string, body: string): Promise<string> {
  const s = await c.request('slot', [queue]);
  assert.ok(s.ok, String(s.params));
  writeFileSync(s.params[0]!, body);
  const r = await c.request('push', [queue, s.params[0]!]);
  assert.ok(r.ok, String(r.params));
  return path.basename(s.params[0]!);
}

async function popPath(c: IpcClient, queue: string): Promise<string | null> {
  const r = await c.request('pop', [queue]);
  return r.ok ? r.params[0]! : null;
}

describe('queued', () => {
  test('FIFO by push time, pop never hands out a leased message twice, done removes', async () => {
    const { q, c } = await setup();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await pushOne(c, 'q1', `m${i}`));
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push((await popPath(c, 'q1'))!);
      assert.deepEqual(got.map((p) => path.basename(p)), ids);
      assert.deepEqual(got.map((p) => readFileSync(p, 'utf8')), ['m0', 'm1', 'm2', 'm3', 'm4']);
      assert.equal(await popPath(c, 'q1'), null, 'all leased: nothing to pop');
      for (const p of got) assert.ok((await c.request('done', ['q1', p])).ok);
      for (const p of got) assert.ok(!existsSync(p));
      assert.equal((await c.request('done', ['q1', got[0]!])).ok, false, 'done twice is an error');
    } finally {
      c.close();
      await q.close();
    }
  });

  test('bad input: names, foreign paths, .., double push, done on unleased, symlinks', async () => {
    const { q, c, dir } = await setup();
    try {
      for (const name of ['../x', 'Incoming', '', '-x', 'a/b', 'x'.repeat(70)]) {
        const r = await c.request('slot', [name]);
        assert.equal(r.ok, false, `slot ${name}`);
      }
      const s = (await c.request('slot', ['q2'])).params[0]!;
      writeFileSync(s, 'x');
      const tmpDir = path.dirname(s);
      for (const bad of [`${tmpDir}/../tmp/${path.basename(s)}`, `${tmpDir}//${path.basename(s)}`, '/etc/passwd', path.join(dir, 'queue/q2/tmp/AAAAAAAAAAAAAAA'), s + '/', 'relative/' + path.basename(s)]) {
        const r = await c.request('push', ['q2', bad]);
        assert.equal(r.ok, false, `push ${bad}`);
        assert.match(r.params[0] ?? '', /slot/);
      }
      assert.equal((await c.request('push', ['q3', s])).ok, false, 'slot of another queue');
      assert.ok((await c.request('push', ['q2', s])).ok);
      const again = await c.request('push', ['q2', s]);
      assert.equal(again.ok, false, 'double push');
      // A slot replaced by a symlink is refused and stays a slot.
      const s2 = (await c.request('slot', ['q2'])).params[0]!;
      symlinkSync('/etc/hostname', s2);
      assert.equal((await c.request('push', ['q2', s2])).ok, false);
      // done/defer need a leased path.
      const msgPath = path.join(dir, 'queue/q2/msg', path.basename(s));
      assert.equal((await c.request('done', ['q2', msgPath])).ok, false, 'done on a ready message');
      assert.equal((await c.request('defer', ['q2', msgPath, '10'])).ok, false, 'defer on a ready message');
      const stats = await c.requestList('qstats');
      assert.deepEqual(stats.items.find((i) => i.params[0] === 'q2')?.params, ['q2', 'ready=1', 'leased=0', 'deferred=0', 'slots=1']);
      const p = (await popPath(c, 'q2'))!;
      assert.equal(p, msgPath);
      assert.equal((await c.request('defer', ['q2', p, '-1'])).ok, false, 'negative seconds');
      assert.equal((await c.request('done', ['q2', p + 'x'])).ok, false);
      assert.ok((await c.request('done', ['q2', p])).ok);
    } finally {
      c.close();
      await q.close();
    }
  });

  test('group commit: 64 concurrent pushes share directory fsyncs', async () => {
    const { cfg, q, dir } = await setup();
    const clients = Array.from({ length: 8 }, () => testClient(cfg, q.addresses.ipc!));
    try {
      const slots = await Promise.all(Array.from({ length: 64 }, (_, i) => clients[i % 8]!.request('slot', ['gc'])));
      slots.forEach((s, i) => writeFileSync(s.params[0]!, `msg ${i}`));
      const before = dirSyncCount();
      const replies = await Promise.all(slots.map((s, i) => clients[i % 8]!.request('push', ['gc', s.params[0]!])));
      const syncs = dirSyncCount() - before;
      assert.ok(replies.every((r) => r.ok));
      assert.equal(readdirSync(path.join(dir, 'queue/gc/msg')).length, 64);
      assert.ok(syncs < 64, `64 pushes used ${syncs} directory fsyncs`);
    } finally {
      clients.forEach((c) => c.close());
      await q.close();
    }
  });

  test('renew keeps a lease alive past lease_s, only for its holder; without it the message comes back', async () => {
    const { cfg, q, c } = await setup({ queued: { lease_s: 0.3 } });
    const other = testClient(cfg, q.addresses.ipc!);
    try {
      await pushOne(c, 'rq', 'renew me');
      const p1 = (await popPath(c, 'rq'))!;
      // Four lease lengths, renewed every 100 ms: it stays leased (qlist says so) all along.
      const state = async (): Promise<string> => (await c.requestList('qlist', ['rq'])).items[0]?.params[2] ?? '';
      const until = Date.now() + 1200;
      while (Date.now() < until) {
        const r = await c.request('renew', ['rq', p1]);
        assert.ok(r.ok, String(r.params));
        assert.ok(Number(r.params[0]) >= 0 && Number(r.params[0]) <= 1, `left: ${r.params[0]}`);
        assert.equal(await state(), 'leased', 'renewed lease: still leased, not back in the queue');
        await new Promise((res) => setTimeout(res, 100));
      }
      const longer = await c.request('renew', ['rq', p1, '30']);
      assert.deepEqual(longer, { ok: true, params: ['30'] });
      const shorter = await c.request('renew', ['rq', p1, '0.2']);
      assert.ok(Number(shorter.params[0]) >= 29, 'a renewal never shortens the lease');
      const foreign = await other.request('renew', ['rq', p1]);
      assert.equal(foreign.ok, false, "another connection cannot renew someone else's lease");
      assert.match(foreign.params[0]!, /^5\.5\.4 /);
      assert.match((await c.request('renew', ['rq', p1, 'x'])).params[0]!, /^5\.5\.4 bad SECONDS/);
      assert.match((await c.request('renew', ['rq', p1.replace(/.$/, p1.endsWith('B') ? 'C' : 'B')])).params[0]!, /^5\.5\.4 not a leased message/);
      assert.ok((await c.request('done', ['rq', p1])).ok);
      assert.equal((await c.request('renew', ['rq', p1])).ok, false, 'done: nothing to renew');

      // Not renewed: back after lease_s, to whoever pops.
      await pushOne(c, 'rq', 'let go');
      const p2 = (await popPath(c, 'rq'))!;
      assert.equal(await waitFor(() => popPath(other, 'rq'), 10_000, 50), p2);
    } finally {
      other.close();
      c.close();
      await q.close();
    }
  });

  test('lease expiry makes a message ready again; defer keeps reason and attempts', async () => {
    const { q, c } = await setup({ queued: { lease_s: 0.3 } });
    try {
      const id = await pushOne(c, 'lq', 'lease me');
      const p1 = (await popPath(c, 'lq'))!;
      assert.equal(await popPath(c, 'lq'), null);
      const p2 = await waitFor(() => popPath(c, 'lq'), 10_000, 50);
      assert.equal(p2, p1, 'same message back after the lease');
      assert.ok((await c.request('defer', ['lq', p2, '2', '451 try later'])).ok);
      const list = await c.requestList('qlist', ['lq']);
      assert.equal(list.items.length, 1);
      const [qid, queue, state, , size, next, attempts, reason] = list.items[0]!.params;
      assert.deepEqual([qid, queue, state, size, attempts, reason], [id, 'lq', 'deferred', '8', '1', '451 try later']);
      assert.ok(next && !Number.isNaN(Date.parse(next)));
      assert.equal(await popPath(c, 'lq'), null, 'deferred: not before its time');
      const p3 = await waitFor(() => popPath(c, 'lq'), 10_000, 50);
      assert.equal(p3, p1);
      assert.ok((await c.request('done', ['lq', p3])).ok);
    } finally {
      c.close();
      await q.close();
    }
  });

  test('restart recovers ready, leased and deferred messages in order; stale slots go', async () => {
    const { cfg, q, c } = await setup({ queued: { slot_grace_s: 0.5 } });
    let q2: RunningServer | null = null;
    const c2 = testClient(cfg, cfg.ipc.queued);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await pushOne(c, 'rq', `r${i}`));
      const leased = (await popPath(c, 'rq'))!;
      const deferred = (await popPath(c, 'rq'))!;
      assert.ok((await c.request('defer', ['rq', deferred, '3600', 'mx down'])).ok);
      const stale = (await c.request('slot', ['rq'])).params[0]!;
      writeFileSync(stale, 'never pushed');
      const sub = await startSubscriber(`unix://${path.join(cfg.data_dir, 'rsub.sock')}`);
      assert.ok((await c.request('subscribe', ['rq', sub.address])).ok);
      await sub.server.close();
      c.close();
      await q.close();

      q2 = await startQueued(cfg);
      // Leased before the restart: ready again, at its push position.
      const order = [];
      for (;;) {
        const p = await popPath(c2, 'rq');
        if (!p) break;
        order.push(path.basename(p));
      }
      assert.deepEqual(order, [ids[0], ids[2], ids[3]]);
      assert.equal(path.basename(leased), ids[0]);
      const list = await c2.requestList('qlist', ['rq']);
      const d = list.items.find((i) => i.params[0] === ids[1]);
      assert.deepEqual(d?.params.slice(2, 3).concat(d.params.slice(6)), ['deferred', '1', 'mx down']);
      assert.ok(existsSync(stale), 'a slot survives the restart for its grace period');
      await waitFor(() => !existsSync(stale), 10_000, 50);
      // The subscription survived too.
      const sub2 = await startSubscriber(sub.address);
      try {
        await pushOne(c2, 'rq', 'after restart');
        await waitFor(() => sub2.alerts.length > 0);
      } finally {
        await sub2.server.close();
      }
    } finally {
      c2.close();
      await q2?.close();
    }
  });

  test('alerts: empty to non-empty, again after a pop error, retried with back-off, dropped', async () => {
    const { cfg, q, c } = await setup({ queued: { alert_backoff_s: 0.05, alert_max_failures: 3 } });
    const sub = await startSubscriber(`unix://${path.join(cfg.data_dir, 'asub.sock')}`);
    try {
      assert.ok((await c.request('subscribe', ['aq', sub.address])).ok);
      await pushOne(c, 'aq', '1');
      await waitFor(() => sub.alerts.length === 1);
      await pushOne(c, 'aq', '2');
      while (await popPath(c, 'aq'));
      const third = Date.now();
      await pushOne(c, 'aq', '3');
      await waitFor(() => sub.alerts.length === 2);
      // Had push 2 (queue already non-empty) alerted, that alert would be the second one.
      assert.ok(sub.times[1]! >= third, 'no alert while the queue was already non-empty');
      // An unreachable subscriber is retried, then dropped (and the drop is persisted).
      const dead = `unix://${path.join(cfg.data_dir, 'nobody.sock')}`;
      assert.ok((await c.request('subscribe', ['aq', dead])).ok);
      while (await popPath(c, 'aq'));
      await pushOne(c, 'aq', '4');
      await waitFor(() => !readFileSync(path.join(cfg.data_dir, 'queue/subscriptions.json'), 'utf8').includes('nobody.sock'), 10_000, 50);
      assert.ok(readFileSync(path.join(cfg.data_dir, 'queue/subscriptions.json'), 'utf8').includes('asub.sock'));
      assert.equal((await c.request('unsubscribe', ['aq', dead])).ok, false, 'dropped already');
      assert.ok((await c.request('unsubscribe', ['aq', sub.address])).ok);
    } finally {
      c.close();
      await sub.server.close();
      await q.close();
    }
  });

  test('admin: qshow, qflush, qrequeue, qdelete, qstats', async () => {
    const { q, c } = await setup();
    try {
      const a = await pushOne(c, 'adm', 'body of a');
      const b = await pushOne(c, 'adm', 'body of b');
      const shown = await c.requestRaw('qshow', [a]);
      assert.equal(shown.data?.toString(), 'body of a');
      assert.equal((await c.requestRaw('qshow', ['ZZZZZZZZZZZZZZZ'])).reply.ok, false);
      assert.equal((await c.request('qshow', ['../../etc/passwd'])).ok, false);
      const pa = (await popPath(c, 'adm'))!;
      assert.ok((await c.request('defer', ['adm', pa, '3600', 'later'])).ok);
      assert.equal((await c.request('qflush')).params[0], '1');
      assert.equal(path.basename((await popPath(c, 'adm'))!), b);
      assert.equal(path.basename((await popPath(c, 'adm'))!), a, 'flushed message is ready again');
      assert.ok((await c.request('qrequeue', [b])).ok, 'requeue a leased message');
      assert.ok((await c.request('qdelete', [b])).ok);
      assert.equal(await popPath(c, 'adm'), null);
      assert.equal((await c.request('qdelete', [b])).ok, false);
      const stats = await c.requestList('qstats');
      assert.deepEqual(stats.items.find((i) => i.params[0] === 'adm')?.params, ['adm', 'ready=0', 'leased=1', 'deferred=0', 'slots=0']);
    } finally {
      c.close();
      await q.close();
    }
  });
});
