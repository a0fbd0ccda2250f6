// The I/O pool keeps a worker for urgent jobs (the queue journal's group commit, which SMTP
// clients wait for): ordinary jobs that hold every other worker do not delay it.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { ioWorkers, runIo } from '../../src/shared/io-pool.js';
import { tempDir } from '../helpers/tmp.js';

const t = tempDir('fmail-io-pool-');
after(() => t.cleanup());

test('an urgent job runs while ordinary fsync jobs hold every worker they may take', async () => {
  // Opening a FIFO for writing blocks until a reader opens it: each job below holds a worker.
  const fifos = Array.from({ length: ioWorkers() }, (_, i) => path.join(t.dir, `fifo${i}`));
  execFileSync('mkfifo', fifos);
  const blocked = fifos.map((f) => runIo({ op: 'write', path: f, flags: 'a', data: [Buffer.from('x')], sync: true, close: true }).then(() => 'ok', (e: NodeJS.ErrnoException) => e.code));
  try {
    // Let the pool hand them out first (it does so in a microtask).
    await new Promise((resolve) => setImmediate(resolve));
    const file = path.join(t.dir, 'journal');
    const urgent = runIo({ op: 'write', path: file, flags: 'wx', data: [Buffer.from('urgent\n')], sync: true, close: true }, true);
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the urgent job waited behind ordinary ones')), 10_000);
    });
    await Promise.race([urgent, stuck]).finally(() => clearTimeout(timer));
    assert.equal(readFileSync(file, 'utf8'), 'urgent\n');
  } finally {
    // A reader on each FIFO lets the blocked opens return (their fdatasync on a pipe then fails).
    const readers = fifos.map((f) => openSync(f, constants.O_RDONLY | constants.O_NONBLOCK));
    // Waiting for them is the cleanup (the workers are free again for the next test).
    await Promise.all(blocked);
    readers.forEach((fd) => closeSync(fd));
  }
});
