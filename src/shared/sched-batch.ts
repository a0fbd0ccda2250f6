// SCHED_BATCH (Linux) for the threads of `fmail start` that only help an event loop: once it is
// up, every thread but the event loops (V8's compiler and GC helpers, libuv's pool, the I/O
// workers: schedBatchHelpers); I/O workers started later put themselves there (schedBatch,
// asked for by io-pool's batchIoWorkers). Other processes (tests, one-shot commands) are left
// as they are.
//
// Why: a job posted to a worker wakes it, and on a busy machine the woken thread preempted the
// event loop that posted it (serving SMTP, the queue, the mailboxes), which then waited for a
// CPU while its worker sat in fdatasync. The scheduler never lets a SCHED_BATCH thread preempt
// on wake-up; it runs when a CPU is free or at the next tick, at the same nice. Measured end
// to end, 8,000 x 4 KiB at 20 SMTP sessions after 2,000 of warm-up: the main event loop was
// preempted 1.29 times per message before, 0.48 after; 10 alternating pairs, msg/s ratio
// 0.88-1.18, median 1.02, CPU per message 0-7 % less (the VM's noise is as large as the gain).
//
// Node has no call for it, so util-linux's `chrt` is run once per thread; without it (or on
// another system) nothing changes.

import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';

/** kernelThreadId - this thread's kernel id (Linux), or null. */
export function kernelThreadId(): string | null {
  if (process.platform !== 'linux') return null;
  try {
    // "/proc/thread-self" reads as "<pid>/task/<tid>".
    const link = readlinkSync('/proc/thread-self');
    return link.slice(link.lastIndexOf('/') + 1);
  } catch {
    return null;
  }
}

/** schedBatch - put the calling thread under SCHED_BATCH (in the background). */
export function schedBatch(): void {
  const tid = kernelThreadId();
  if (tid !== null) chrtBatch(tid);
}

/** schedBatchHelpers - every thread of this process but the event loops in KEEP, under SCHED_BATCH (in the background). */
export function schedBatchHelpers(keep: readonly string[]): void {
  if (process.platform !== 'linux') return;
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task').filter((t) => !keep.includes(t));
  } catch {
    return;
  }
  for (const tid of tids) chrtBatch(tid);
}

function chrtBatch(tid: string): void {
  try {
    spawn('chrt', ['--batch', '--pid', '0', tid], { stdio: 'ignore' }).on('error', () => {});
  } catch {
    // no chrt: nothing changes
  }
}
