// mailboxd with the real authd (startSystem): users come from DATA/users; aliases and unknown
// addresses get no Maildir of their own.

import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { type System, startSystem } from '../../src/cli/start.js';
import { IpcClient } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('fmail-mbox-sys-');
let system: System;
let client: IpcClient;

before(async () => {
  writeFileSync(path.join(tmp.dir, 'users'), 'alice@example.com:{PLAIN}x::::::\nbob@example.com:{PLAIN}y::::::\n');
  writeFileSync(path.join(tmp.dir, 'aliases'), 'team@example.com: alice@example.com, bob@example.com\n');
  const config = testConfig(tmp.dir);
  system = await startSystem(config, silentLogger(), ['authd', 'mailboxd']);
  client = testClient(config, config.ipc.mailboxd);
});
after(async () => {
  client?.close();
  await system?.stop();
  tmp.cleanup();
});

test('store/list/retr for a user of DATA/users; unknown users and aliases refused', async () => {
  const body = Buffer.from('Subject: hi\r\n\r\nhello\r\n');
  assert.equal((await client.store('store', ['Alice@Example.com', 'team@example.com', String(body.length)], body)).ok, true);
  const l = await client.requestList('list', ['alice@example.com']);
  assert.equal(l.items.length, 1);
  const r = await client.requestRaw('retr', ['alice@example.com', '1']);
  assert.equal(r.data!.toString(), 'Delivered-To: team@example.com\r\nSubject: hi\r\n\r\nhello\r\n');

  for (const to of ['nobody@example.com', 'team@example.com', 'alice+tag@example.com']) {
    const res = await client.store('store', [to, to, String(body.length)], body);
    assert.equal(res.ok, false, `store to ${to}`);
    assert.equal((await client.requestList('list', [to])).reply.ok, false, `list of ${to}`);
    assert.ok(!existsSync(path.join(tmp.dir, 'mail', to)), `no Maildir for ${to}`);
  }
  assert.equal((await client.requestList('list', ['bob@example.com'])).reply.ok, true);
});
