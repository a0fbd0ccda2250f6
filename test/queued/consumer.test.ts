// QueueConsumer against a queued that restarted mid-delivery: the same PATH popped again while
// its first delivery is in hand is not taken a second time (two deliveries of one file race,
// and the first one's `done` would end the second's lease under it); its new lease is renewed.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { IpcClient } from '../../src/ipc/index.js';
import type { IpcReply } from '../../src/ipc/reply.js';
import { QueueConsumer } from '../../src/mail/queue-consumer.js';
import { silentLogger } from '../../src/shared/log.js';
import { waitFor } from '../helpers/tmp.js';

test('a path handed out again while in hand is not taken twice; its lease is renewed', async () => {
  // What the restarted queued hands out: A (again, while the first A is in hand), then B.
  const pops = ['/q/A', '/q/A', '/q/B'];
  const renewed: string[] = [];
  const queued = {
    request: async (cmd: string, params: string[]): Promise<IpcReply> => {
      if (cmd === 'pop') {
        const p = pops.shift();
        return p ? { ok: true, params: [p] } : { ok: false, params: ['empty'] };
      }
      if (cmd === 'renew') renewed.push(params[1]!);
      return { ok: true, params: ['600'] };
    },
  } as unknown as IpcClient;
  const taken: string[] = [];
  const releases: Array<() => void> = [];
  const consumer = new QueueConsumer({
    queued,
    queue: 'incoming',
    concurrency: () => 10,
    pollMs: 60_000,
    logger: silentLogger(),
    events: 'test',
    take: async (file, release) => {
      taken.push(file);
      releases.push(release);
    },
  });
  consumer.start('unix:///nowhere');
  try {
    await waitFor(() => pops.length === 0 && taken.length === 2, 5000);
    assert.deepEqual(taken, ['/q/A', '/q/B']);
    assert.equal(consumer.inFlight, 2);
    // A is still in hand: its lease (the one the second pop made) is renewed.
    await waitFor(() => renewed.includes('/q/A'), 5000);
    // Once released, A may be taken again (a later pop of it is a new delivery).
    releases[0]!();
    pops.push('/q/A');
    consumer.kick();
    await waitFor(() => taken.length === 3, 5000);
    assert.deepEqual(taken, ['/q/A', '/q/B', '/q/A']);
  } finally {
    for (const r of releases) r();
    await consumer.close(100);
  }
});
