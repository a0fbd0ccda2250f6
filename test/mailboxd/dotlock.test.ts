// The uidlist's dotlock as the I/O worker takes it (lockedAppend): a hard link of the thread's
// own lock file in tmp/ (Dovecot's link() method), exclusive, released, re-made when swept.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { runIo } from '../../src/shared/io-pool.js';
import { fileStamp } from '../../src/shared/stamp.js';
import { tempDir } from '../helpers/tmp.js';

const t = tempDir('fmail-dotlock-');
after(() => t.cleanup());

const append = async (box: string, text: string, expect: string) =>
  runIo({
    op: 'lockedAppend',
    lock: path.join(box, 'dovecot-uidlist.lock'),
    lockText: `${process.pid}:test-host`,
    file: path.join(box, 'dovecot-uidlist'),
    expect,
    text,
    stampDirs: [],
  });

test('lockedAppend: locked while the lock exists, a link of tmp/.dotlock.* otherwise; re-made when swept', async () => {
  const box = path.join(t.dir, 'box');
  mkdirSync(path.join(box, 'tmp'), { recursive: true });
  const uidlist = path.join(box, 'dovecot-uidlist');
  const lock = path.join(box, 'dovecot-uidlist.lock');

  // Someone else (Dovecot) holds the lock: nothing is written.
  writeFileSync(lock, '1:elsewhere');
  assert.equal((await append(box, '1 :a\n', 'none')).locked, true);
  assert.equal(existsSync(uidlist), false);
  assert.equal(readFileSync(lock, 'utf8'), '1:elsewhere', 'the holder keeps its lock');
  rmSync(lock);

  const first = await append(box, '1 :a\n', 'none');
  assert.ok(first.stamp, JSON.stringify(first));
  assert.equal(readFileSync(uidlist, 'utf8'), '1 :a\n');
  assert.equal(existsSync(lock), false, 'released');
  const sources = readdirSync(path.join(box, 'tmp'));
  assert.equal(sources.length, 1);
  assert.match(sources[0]!, /^\.dotlock\.\d+\.\d+$/);
  assert.equal(readFileSync(path.join(box, 'tmp', sources[0]!), 'utf8'), `${process.pid}:test-host`, 'what a lock holder writes');
  const before = statSync(path.join(box, 'tmp', sources[0]!)).mtimeMs;

  // Swept from tmp/ (stale): made again.
  rmSync(path.join(box, 'tmp', sources[0]!));
  const second = await append(box, '2 :b\n', fileStamp(statSync(uidlist, { bigint: true })));
  assert.ok(second.stamp, JSON.stringify(second));
  assert.equal(readFileSync(uidlist, 'utf8'), '1 :a\n2 :b\n');
  assert.ok(statSync(path.join(box, 'tmp', sources[0]!)).mtimeMs >= before, 'the source is fresh: a lock linked from it is not taken for stale');

  // No tmp/ beside the lock: O_EXCL, as before.
  const bare = path.join(t.dir, 'bare');
  mkdirSync(bare);
  assert.ok((await append(bare, '1 :c\n', 'none')).stamp);
  assert.deepEqual(readdirSync(bare).sort(), ['dovecot-uidlist']);
});
