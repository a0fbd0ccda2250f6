// AnswerCache: an `ok` answer is reused for its TTL; an error answer is asked again each time.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';

import { AnswerCache } from '../../src/ipc/answer-cache.js';
import { IpcClient, IpcServer, error, ok } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { tempDir } from '../helpers/tmp.js';

const t = tempDir('fmail-answer-cache-');
after(() => t.cleanup());

test('ok answers are reused for the TTL, errors never', async () => {
  const users = new Set(['alice@example.test']);
  let asked = 0;
  const server = new IpcServer({ serverName: 'authd', version: '0', logger: silentLogger() });
  server.on('resolve', { params: 1, handle: (c) => (asked++, users.has(c.params[0]!) ? ok(c.params[0]!) : error('no such user')) });
  const address = `unix://${path.join(t.dir, 'authd.sock')}`;
  await server.listen(address);
  const client = new IpcClient(address);
  try {
    const cache = new AnswerCache(client, 300);
    assert.deepEqual((await cache.request('resolve', ['alice@example.test'])).params, ['alice@example.test']);
    users.delete('alice@example.test');
    assert.equal((await cache.request('resolve', ['alice@example.test'])).ok, true, 'from the cache');
    assert.equal(asked, 1);
    assert.equal((await cache.request('resolve', ['bob@example.test'])).ok, false);
    assert.equal((await cache.request('resolve', ['bob@example.test'])).ok, false);
    assert.equal(asked, 3, 'an error is asked again');
    let r = await cache.request('resolve', ['alice@example.test']);
    for (let i = 0; i < 50 && r.ok; i++) {
      await new Promise((res) => setTimeout(res, 50));
      r = await cache.request('resolve', ['alice@example.test']);
    }
    assert.equal(r.ok, false, 'asked again once the TTL is over');
  } finally {
    client.close();
    await server.close();
  }
});

test('bounded (the oldest answers make room), and off at a TTL of 0', async () => {
  let asked = 0;
  const fake = { request: async (_name: string, params: string[] = []) => (asked++, { ok: true, params }) };
  const cache = new AnswerCache(fake, 60_000);
  for (let i = 0; i < 5000; i++) await cache.request('resolve', [`u${i}@example.test`]);
  asked = 0;
  await cache.request('resolve', ['u4999@example.test']);
  assert.equal(asked, 0, 'the newest is kept');
  await cache.request('resolve', ['u0@example.test']);
  assert.equal(asked, 1, 'the oldest made room');
  const off = new AnswerCache(fake, 0);
  await off.request('resolve', ['a@example.test']);
  await off.request('resolve', ['a@example.test']);
  assert.equal(asked, 3);
});
