// smtp-out scheduling, after Postfix's qmgr: lease renewal during a slow session, one copy and
// one transaction per message and destination, jobs in hand per destination, the
// dead-destination cache, round robin between destinations, destination_rate_delay.

import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';

import { spoolMessage } from '../../src/mail/spool.js';
import { testClient } from '../helpers/config.js';
import { waitFor } from '../helpers/tmp.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

async function withSystem(sinks: number, overrides: (ports: number[]) => Parameters<typeof startFancy>[0], body: (f: Fancy, sinks: Sink[]) => Promise<void>): Promise<void> {
  const started = await Promise.all(Array.from({ length: sinks }, () => startSink()));
  const f = await startFancy(overrides(started.map((s) => s.port)));
  try {
    await body(f, started);
  } finally {
    await f.stop();
    for (const s of started) await s.close();
  }
}

describe('smtp-out scheduling', () => {
  test('a session slower than the lease keeps its lease (renew): the message is sent once', { timeout: 60_000 }, async () => {
    await withSystem(1, ([port]) => ({ queued: { lease_s: 1 }, smtp_out: { routes: { 'slow.test': `127.0.0.1:${port}` } } }), async (f, [sink]) => {
      sink!.dataDelayMs = 3500; // three and a half leases
      const qid = await f.inject('alice@example.test', ['a@slow.test'], message('slow one'));
      await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid, 30_000);
      // Had a lease expired, queued would have logged it (and handed the file out again)
      // about a second in, long before this 3.5 s delivery ended.
      assert.deepEqual(f.logs.filter((l) => l.event === 'queued.lease_expired'), []);
      assert.deepEqual(f.logs.filter((l) => l.event === 'smtp-out.lease_lost'), []);
      assert.equal(sink!.messages.filter((m) => m.data.includes('slow one')).length, 1);
      // The router's lease on the incoming file is renewed the same way (shared QueueConsumer).
      await f.waitLog((l) => l.event === 'queued.done' && l.queue === 'outgoing');
    });
  });

  test('recipients of one message to one destination: one copy in outgoing, one transaction', async () => {
    await withSystem(2, ([a, b]) => ({ smtp_out: { routes: { 'one.test': `127.0.0.1:${a}`, 'two.test': `127.0.0.1:${b}` } } }), async (f, [one, two]) => {
      const qid = await f.inject('alice@example.test', ['x@one.test', 'y@one.test', 'z@one.test', 'w@two.test'], message('one copy'));
      await waitFor(() => one!.messages.some((m) => m.data.includes('one copy')) && two!.messages.some((m) => m.data.includes('one copy')));
      const got = one!.messages.filter((m) => m.data.includes('one copy'));
      assert.equal(got.length, 1, 'one transaction');
      assert.deepEqual(got[0]!.to.sort(), ['x@one.test', 'y@one.test', 'z@one.test']);
      const queuedLines = f.logs.filter((l) => l.event === 'smtp-out.queued' && l.qid === qid);
      assert.equal(queuedLines.length, 4);
      const slots = new Set(queuedLines.map((l) => l.slot));
      assert.equal(slots.size, 2, 'one outgoing file per destination, not per recipient');
      for (const r of ['x@one.test', 'y@one.test', 'z@one.test', 'w@two.test']) await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid && l.rcpt === r);
    });
  });

  test('a send repeated after a router crash (same qid and recipient) makes no second copy', async () => {
    await withSystem(1, ([port]) => ({ smtp_out: { routes: { 'again.test': `127.0.0.1:${port}` } } }), async (f, [sink]) => {
      // A queue file nobody consumes stands for the router's incoming file it never got to `done`.
      const q = testClient(f.config, f.config.ipc.queued);
      const out = testClient(f.config, f.config.ipc.smtp_out);
      try {
        const env = { qid: '', from: 'alice@example.test', rcpt: ['r@again.test'], client: '127.0.0.1', helo: 't', auth: '', time: new Date().toISOString() };
        const spooled = await spoolMessage(q, 'held', env, message('sent again'));
        // Where queued keeps it (msg/ for a pushed file, cache/ for a put): what pop hands out.
        const popped = await q.request('pop', ['held']);
        assert.ok(popped.ok && path.basename(popped.params[0]!) === spooled.qid);
        const held = { qid: spooled.qid, file: popped.params[0]! };
        assert.deepEqual(await out.request('send', ['alice@example.test', 'r@again.test', held.file]), { ok: true, params: [] });
        await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === held.qid);
        assert.deepEqual(await out.request('send', ['alice@example.test', 'r@again.test', held.file]), { ok: true, params: [] });
        await f.waitLog((l) => l.event === 'smtp-out.already_queued' && l.qid === held.qid);
        // The second `ok` came without a new copy: nothing else can reach the sink.
        await f.waitLog((l) => l.event === 'queued.done' && l.queue === 'outgoing');
        assert.equal(sink!.messages.filter((m) => m.data.includes('sent again')).length, 1);
        assert.equal(f.logs.filter((l) => l.event === 'smtp-out.queued' && l.qid === held.qid).length, 1, 'one copy in outgoing');
      } finally {
        q.close();
        out.close();
      }
    });
  });

  test('a blocked destination holds only its jobs in hand; mail to others goes meanwhile', { timeout: 60_000 }, async () => {
    await withSystem(
      2,
      ([a, b]) => ({ smtp_out: { concurrency: 4, destination_jobs_limit: 2, routes: { 'stuck.test': `127.0.0.1:${a}`, 'fast.test': `127.0.0.1:${b}` } } }),
      async (f, [stuck, fast]) => {
        stuck!.dataDelayMs = 6000;
        const slow: string[] = [];
        for (let i = 0; i < 6; i++) slow.push(await f.inject('alice@example.test', [`s${i}@stuck.test`], message(`stuck ${i}`)));
        await f.waitLog((l) => l.event === 'smtp-out.queued' && l.qid === slow[5]);
        const quick: string[] = [];
        for (let i = 0; i < 3; i++) quick.push(await f.inject('alice@example.test', [`f${i}@fast.test`], message(`fast ${i}`)));
        await waitFor(() => quick.every((q) => f.logs.some((l) => l.event === 'smtp-out.sent' && l.qid === q)), 20_000);
        // Without the limit the six stuck files would fill all four slots for six seconds.
        const stuckSent = f.logs.filter((l) => l.event === 'smtp-out.sent' && slow.includes(String(l.qid)));
        assert.equal(stuckSent.length, 0, 'the fast mail went while the stuck destination was still busy');
        assert.equal(fast!.messages.length, 3);
      },
    );
  });

  test('dead-destination cache: after a failed connect, mail for it is deferred without another attempt', async () => {
    const closed = await startSink();
    const port = closed.port;
    await closed.close();
    await withSystem(0, () => ({ smtp_out: { routes: { 'dead.test': `127.0.0.1:${port}` }, dead_destination_s: 60, first_retry_s: 30 } }), async (f) => {
      const first = await f.inject('alice@example.test', ['a@dead.test'], message('dead 1'));
      await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === first);
      await f.waitLog((l) => l.event === 'smtp-out.destination_dead');
      const second = await f.inject('alice@example.test', ['b@dead.test'], message('dead 2'));
      const line = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === second);
      assert.match(String(line.reason), /destination dead/);
      assert.match(String(line.reason), /ECONNREFUSED|connect/i);
      assert.equal(f.logs.filter((l) => l.event === 'smtp-out.connect_failed').length, 1, 'one connection attempt for both');
    });
  });

  test('round robin: with one session slot, two destinations take turns', { timeout: 60_000 }, async () => {
    await withSystem(2, ([a, b]) => ({ smtp_out: { max_sessions: 1, routes: { 'a.test': `127.0.0.1:${a}`, 'b.test': `127.0.0.1:${b}` } } }), async (f, [a, b]) => {
      a!.dataDelayMs = 200;
      b!.dataDelayMs = 200;
      for (let i = 0; i < 4; i++) await f.inject('alice@example.test', [`x${i}@a.test`], message(`rr a${i}`));
      for (let i = 0; i < 4; i++) await f.inject('alice@example.test', [`x${i}@b.test`], message(`rr b${i}`));
      await waitFor(() => a!.messages.length === 4 && b!.messages.length === 4, 30_000);
      const order = [...a!.messages.map((m) => ({ d: 'a', at: m.at })), ...b!.messages.map((m) => ({ d: 'b', at: m.at }))].sort((x, y) => x.at - y.at).map((x) => x.d).join('');
      // a's first deliveries may run before b's mail is even loaded, and b's last ones after a
      // ran out; while both have mail waiting, they take turns.
      const both = order.slice(order.indexOf('b'), order.lastIndexOf('a') + 1);
      assert.ok(both.length >= 2, `order ${order}`);
      assert.doesNotMatch(both, /aaa|bbb/, `order ${order}`);
    });
  });

  test('destination_rate_delay: deliveries to one destination at least that far apart', { timeout: 60_000 }, async () => {
    await withSystem(1, ([port]) => ({ smtp_out: { destination_rate_delay: 0.7, routes: { 'rate.test': `127.0.0.1:${port}` } } }), async (f, [sink]) => {
      for (let i = 0; i < 3; i++) await f.inject('alice@example.test', [`r${i}@rate.test`], message(`rate ${i}`));
      await waitFor(() => sink!.messages.length === 3, 30_000);
      const at = sink!.messages.map((m) => m.at);
      for (let i = 1; i < at.length; i++) assert.ok(at[i]! - at[i - 1]! >= 650, `gaps ${at.map((t) => t - at[0]!).join(',')}`);
    });
  });
});
