// router: a local delivery slower than queued's lease keeps the lease (the router renews it),
// so the message is not handed to a second router worker while the first store is alive.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { IpcServer, ok } from '../../src/ipc/index.js';
import { ipcSecret } from '../../src/shared/ipc-secret.js';
import { silentLogger } from '../../src/shared/log.js';
import { waitFor } from '../helpers/tmp.js';
import { message, startFancy } from './harness.js';

describe('router: lease renewal', () => {
  test('a store that stalls for three leases: stored once, the lease never expires', { timeout: 60_000 }, async () => {
    const f = await startFancy({ queued: { lease_s: 1 } });
    // A mailboxd that takes 3.5 s per store, standing in for a slow disk.
    const stores: string[] = [];
    const slow = new IpcServer({ serverName: 'mailboxd', version: '0', logger: silentLogger(), secret: ipcSecret(f.config) });
    slow.on('store', {
      params: [3, 4],
      rawInput: true,
      handle: async (c) => {
        c.send('ok');
        for await (const _ of c.receiveRaw(Number(c.params[2]))) void _;
        stores.push(c.params[3] ?? '');
        await new Promise((r) => setTimeout(r, 3500));
        return ok();
      },
    });
    const real = f.system.servers.find((s) => s.name === 'mailboxd')!;
    try {
      await real.close();
      await slow.listen(f.config.ipc.mailboxd);
      const qid = await f.inject('carol@remote.test', ['alice@example.test'], message('slow store'));
      await f.waitLog((l) => l.event === 'router.delivered' && l.qid === qid, 30_000);
      await f.waitLog((l) => l.event === 'queued.done' && l.qid === qid);
      // An expired lease would have been logged about a second in, long before the store ended.
      assert.deepEqual(f.logs.filter((l) => l.event === 'queued.lease_expired'), []);
      assert.deepEqual(stores, [qid], 'one store, carrying the qid');
      await waitFor(() => f.logs.some((l) => l.event === 'queued.done' && l.qid === qid));
    } finally {
      await slow.close(100);
      f.system.servers.splice(f.system.servers.indexOf(real), 1);
      await f.stop();
    }
  });
});
