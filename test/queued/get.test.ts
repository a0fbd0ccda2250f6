// queued `get`: a popped message's bytes over IPC (for a consumer without queued's disk), from
// the journal (`put`) and from msg/ files (`push`), also after a restart; bad input refused.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import type { IpcClient } from '../../src/ipc/index.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { putMessage as put, startQueued } from './helpers.js';

const dirs: Array<{ cleanup(): void }> = [];
after(() => dirs.forEach((d) => d.cleanup()));

async function push(c: IpcClient, queue: string, data: Buffer): Promise<string> {
  const s = await c.request('slot', [queue]);
  writeFileSync(s.params[0]!, data);
  assert.ok((await c.request('push', [queue, s.params[0]!])).ok);
  return s.params[0]!;
}

test('get: the bytes of put and pushed messages, by pop path or qid, byte-exact, also after a restart', async () => {
  const t = tempDir('fmail-queued-get-');
  dirs.push(t);
  const cfg = testConfig(t.dir);
  let q = await startQueued(cfg);
  let c = testClient(cfg, q.addresses.ipc!);
  const small = Buffer.concat([Buffer.from('Subject: put\r\n\r\n'), randomBytes(3000)]);
  const big = randomBytes(3 * 1024 * 1024 + 7);
  const empty = Buffer.alloc(0);
  try {
    await put(c, 'incoming', small);
    await push(c, 'incoming', big);
    await put(c, 'incoming', empty);
    const popped: string[] = [];
    for (let i = 0; i < 3; i++) popped.push((await c.request('pop', ['incoming'])).params[0]!);
    const want = [small, big, empty];
    for (let i = 0; i < 3; i++) {
      const byPath = await c.requestRaw('get', ['incoming', popped[i]!]);
      assert.ok(byPath.reply.ok, String(byPath.reply.params));
      assert.equal(byPath.reply.params[0], String(want[i]!.length));
      assert.ok(byPath.data!.equals(want[i]!), `message ${i} by path`);
      const byQid = await c.requestRaw('get', ['incoming', path.basename(popped[i]!)]);
      assert.ok(byQid.data!.equals(want[i]!), `message ${i} by qid`);
    }
    // A stream reply keeps the connection in step: a request after it is answered normally.
    const streamed = await c.requestStream('get', ['incoming', popped[1]!]);
    const chunks: Buffer[] = [];
    for await (const ch of streamed.stream!) chunks.push(ch as Buffer);
    assert.ok(Buffer.concat(chunks).equals(big));
    assert.equal((await c.request('ping')).ok, true);

    // Refused: slots, unknown ids, paths we did not hand out, other queues, bad names.
    const slot = (await c.request('slot', ['incoming'])).params[0]!;
    writeFileSync(slot, 'not yet pushed');
    for (const [queue, arg] of [
      ['incoming', slot],
      ['incoming', path.basename(slot)],
      ['incoming', 'BCDFGHJKLMNPQRS'],
      ['incoming', `${path.join(t.dir, 'queue', 'incoming', 'tmp')}/../msg/${path.basename(popped[1]!)}`],
      ['incoming', '/etc/passwd'],
      ['outgoing', popped[0]!],
      ['../x', popped[0]!],
    ] as const) {
      const r = await c.requestRaw('get', [queue, arg]);
      assert.equal(r.reply.ok, false, `${queue} ${arg}`);
      assert.match(r.reply.params[0] ?? '', /^5\.5\.4 /);
    }

    // After a restart (leases gone, journal recovered): still readable, and after done it is gone.
    c.close();
    await q.close();
    q = await startQueued(cfg);
    c = testClient(cfg, q.addresses.ipc!);
    for (let i = 0; i < 3; i++) {
      const r = await c.requestRaw('get', ['incoming', path.basename(popped[i]!)]);
      assert.ok(r.data!.equals(want[i]!), `message ${i} after restart`);
    }
    const again = (await c.request('pop', ['incoming'])).params[0]!;
    assert.ok((await c.request('done', ['incoming', again])).ok);
    assert.equal((await c.requestRaw('get', ['incoming', again])).reply.ok, false, 'done: gone');
  } finally {
    c.close();
    await q.close();
  }
});
