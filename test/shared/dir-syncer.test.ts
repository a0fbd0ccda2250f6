// DirSyncer.expect: a folder's batch waits (briefly) for a file announced as on its way, so
// both renames share one fsync of the folder. A patient caller's batch gathers renames that come
// one after another; a prompt caller joining it cuts the wait.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { DirSyncer, type GatherOptions, dirSyncCount } from '../../src/shared/durable.js';
import { tempDir } from '../helpers/tmp.js';

const t = tempDir('fmail-dir-syncer-');
after(() => t.cleanup());

test('a batch waits for an expected file: two renames, one folder fsync', async () => {
  const tmp = path.join(t.dir, 'tmp');
  const dir = path.join(t.dir, 'new');
  mkdirSync(tmp);
  mkdirSync(dir);
  for (const n of ['a', 'b']) writeFileSync(path.join(tmp, n), n);
  const syncer = new DirSyncer();
  const arrive = syncer.expect(dir);
  const before = dirSyncCount();
  const first = syncer.sync(dir, { from: path.join(tmp, 'a'), to: path.join(dir, 'a') });
  // The batch has begun (its turn of the event loop is over) and waits for the expected file.
  await new Promise((resolve) => setImmediate(resolve));
  arrive();
  const second = syncer.sync(dir, { from: path.join(tmp, 'b'), to: path.join(dir, 'b') });
  await Promise.all([first, second]);
  assert.equal(dirSyncCount() - before, 1);
  assert.ok(existsSync(path.join(dir, 'a')) && existsSync(path.join(dir, 'b')));
});

function files(sub: string, names: string[]): { tmp: string; dir: string } {
  const tmp = path.join(t.dir, `${sub}-tmp`);
  const dir = path.join(t.dir, sub);
  mkdirSync(tmp);
  mkdirSync(dir);
  for (const n of names) writeFileSync(path.join(tmp, n), n);
  return { tmp, dir };
}

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a patient batch gathers renames that come one after another, and goes once it is full', { timeout: 20_000 }, async () => {
  const { tmp, dir } = files('patient', ['a', 'b', 'c']);
  const syncer = new DirSyncer();
  // Nothing but the count ends this wait in the test's time.
  const patient: GatherOptions = { maxMs: 600_000, count: 3, idleMs: 600_000 };
  const before = dirSyncCount();
  const done: Array<Promise<unknown>> = [];
  for (const n of ['a', 'b', 'c']) {
    done.push(syncer.sync(dir, { from: path.join(tmp, n), to: path.join(dir, n) }, patient));
    await tick(20);
  }
  await Promise.all(done);
  assert.equal(dirSyncCount() - before, 1);
  for (const n of ['a', 'b', 'c']) assert.ok(existsSync(path.join(dir, n)));
});

test('a prompt caller joining a patient batch cuts its wait: both in one fsync', { timeout: 20_000 }, async () => {
  const { tmp, dir } = files('mixed', ['a', 'b']);
  const syncer = new DirSyncer();
  const patient: GatherOptions = { maxMs: 600_000, count: 100, idleMs: 600_000 };
  const before = dirSyncCount();
  const first = syncer.sync(dir, { from: path.join(tmp, 'a'), to: path.join(dir, 'a') }, patient);
  await tick(20);
  const second = syncer.sync(dir, { from: path.join(tmp, 'b'), to: path.join(dir, 'b') });
  await Promise.all([first, second]);
  assert.equal(dirSyncCount() - before, 1);
});
