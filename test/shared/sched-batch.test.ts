// SCHED_BATCH for helper threads: a worker that asks gets it; schedBatchHelpers puts every
// thread but the kept event loops there, and leaves those alone; after batchIoWorkers (what fmail
// start calls), an I/O worker started later puts itself there.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { batchIoWorkers, runIo } from '../../src/shared/io-pool.js';
import { kernelThreadId, schedBatchHelpers } from '../../src/shared/sched-batch.js';
import { tempDir } from '../helpers/tmp.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;
const linux = process.platform === 'linux';

/** policy - the scheduling policy of thread TID of this process (field 41 of its stat). */
function policy(tid: string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// A thread that reports its kernel id (after schedBatch() when asked) and waits to be told to end.
const WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
const m = await import(workerData.module);
if (workerData.batch) m.schedBatch();
parentPort.postMessage(m.kernelThreadId());
parentPort.once('message', () => process.exit(0));
`;

async function startThread(batch: boolean): Promise<{ tid: string; end(): Promise<void> }> {
  const module = new URL('../../src/shared/sched-batch.js', import.meta.url).href;
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(WORKER)}`), { workerData: { module, batch } });
  const tid = await new Promise<string>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return {
    tid,
    end: async () => {
      w.postMessage('end');
      await new Promise((resolve) => w.once('exit', resolve));
    },
  };
}

test('a thread that calls schedBatch runs under SCHED_BATCH; the others are left alone', { skip: !linux }, async () => {
  const t = await startThread(true);
  try {
    await until('the thread under SCHED_BATCH', () => policy(t.tid) === SCHED_BATCH);
    assert.equal(policy(kernelThreadId()!), SCHED_OTHER);
  } finally {
    await t.end();
  }
});

test('schedBatchHelpers: every thread but the kept ones goes to SCHED_BATCH', { skip: !linux }, async () => {
  const helper = await startThread(false);
  const loop = await startThread(false);
  try {
    assert.equal(policy(helper.tid), SCHED_OTHER);
    schedBatchHelpers([kernelThreadId()!, loop.tid]);
    await until('the helper thread under SCHED_BATCH', () => policy(helper.tid) === SCHED_BATCH);
    assert.equal(policy(kernelThreadId()!), SCHED_OTHER);
    assert.equal(policy(loop.tid), SCHED_OTHER);
  } finally {
    await helper.end();
    await loop.end();
  }
});

test('after batchIoWorkers, an I/O worker started later runs under SCHED_BATCH', { skip: !linux }, async () => {
  const t = tempDir('fmail-sched-batch-');
  try {
    const before = new Set(readdirSync('/proc/self/task'));
    batchIoWorkers();
    // This file's first job starts this thread's first I/O worker.
    await runIo({ op: 'write', path: path.join(t.dir, 'f'), flags: 'wx', data: [Buffer.from('x')], sync: true, close: true });
    const started = () => readdirSync('/proc/self/task').filter((tid) => !before.has(tid));
    await until('a new thread under SCHED_BATCH', () => started().some((tid) => policy(tid) === SCHED_BATCH));
    assert.equal(policy(kernelThreadId()!), SCHED_OTHER);
  } finally {
    t.cleanup();
  }
});
