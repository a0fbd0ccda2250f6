// A consumer that dies between pop and done/defer gives its lease back as soon as its IPC
// connection closes, not after lease_s (a router killed with SIGKILL must not hold mail for
// ten minutes). A lease finished with done is not given back.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, test } from 'node:test';

import { testClient, testConfig } from '../helpers/config.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { startQueued } from './helpers.js';

const t = tempDir('fmail-queued-abandon-');
after(() => t.cleanup());

test('leases of a closed connection come back at once; finished ones do not', async () => {
  const cfg = testConfig(t.dir, { queued: { lease_s: 600 } });
  const q = await startQueued(cfg);
  const admin = testClient(cfg, q.addresses.ipc!);
  try {
    for (const body of ['first', 'second']) {
      const s = await admin.request('slot', ['work']);
      writeFileSync(s.params[0]!, body);
      assert.ok((await admin.request('push', ['work', s.params[0]!])).ok);
    }
    const consumer = testClient(cfg, q.addresses.ipc!);
    const a = (await consumer.request('pop', ['work'])).params[0]!;
    const b = (await consumer.request('pop', ['work'])).params[0]!;
    assert.ok((await consumer.request('done', ['work', a])).ok);
    assert.equal((await admin.request('pop', ['work'])).ok, false, 'both leased while the consumer lives');
    consumer.close();
    const again = await waitFor(async () => {
      const r = await admin.request('pop', ['work']);
      return r.ok ? r.params[0]! : null;
    }, 10_000, 100);
    assert.equal(again, b, 'the unfinished message is ready again long before lease_s');
    assert.equal((await admin.request('pop', ['work'])).ok, false, 'the finished one stays gone');
  } finally {
    admin.close();
    await q.close();
  }
});
