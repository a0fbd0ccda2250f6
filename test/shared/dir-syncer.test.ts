// DirSyncer.expect: a folder's batch waits (briefly) for a file announced as on its way, so
// both renames share one fsync of the folder.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { DirSyncer, dirSyncCount } from '../../src/shared/durable.js';
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
