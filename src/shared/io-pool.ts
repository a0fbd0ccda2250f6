// io-pool - a few worker threads that do file work with synchronous calls, in batches.
//
// Why: every fs.promises call is its own round trip through libuv's thread pool (a futex wake
// each way), and a message file is five of them (open, write, fdatasync, close, rename) queued
// behind other fsyncs. Here a job is the whole sequence, so a file costs one hop; jobs that
// arrive while every worker is busy go to the next free one together (one hop for the batch),
// but at most ONE job with an fsync per batch: fsyncs run side by side in different workers,
// so the file system merges them into one journal commit (measured: 4 files fsynced in a row
// by one thread cost 4 commits; by 4 threads at once, about one, on a journaled file system;
// this VM's ext4 without a journal still gains from the disk's own queue). One worker is kept
// for urgent jobs (the queue journal's commit, which SMTP clients wait for). Workers start on
// first use, ref the process only while they have work, and each JavaScript thread (the main
// one, fmail start's front-end thread) has its own pool.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export type IoJob =
  | {
      op: 'write';
      /** File to open (with FLAGS), or FD to write to an already open one. */
      path?: string;
      fd?: number;
      flags?: 'w' | 'wx' | 'a';
      mode?: number;
      data: Uint8Array[];
      /** fdatasync after writing. */
      sync?: boolean;
      /** Close after writing (else the result carries the fd for the next write). */
      close?: boolean;
      /** After close, rename PATH to this. */
      renameTo?: string;
      /** Positioned writes after DATA (bytes filled in at the end, e.g. a header), before the fdatasync. */
      patches?: Array<{ at: number; data: Uint8Array }>;
      /** After close, set PATH's atime and mtime to this (seconds), before the rename. */
      mtime?: number;
    }
  | { op: 'close'; fd: number }
  | { op: 'unlink'; path: string; quiet?: boolean }
  | { op: 'read'; path: string; max: number }
  | { op: 'commit'; dir: string; steps: CommitStep[] }
  | { op: 'pread'; fd: number; off: number; len: number }
  | {
      op: 'lockedAppend';
      /** Create LOCK exclusively (a dotlock, holding LOCKTEXT), else answer `locked`. */
      lock: string;
      lockText: string;
      /** Append TEXT to FILE (O_APPEND, created 0600), fdatasync it; only if its stamp is still EXPECT, else answer `stale`. */
      file: string;
      expect: string;
      text: string;
      /** Folders whose stamps to return after the append (inode:mtimeNs). */
      stampDirs: string[];
    }
  | {
      op: 'journal';
      /** Positioned writes (offsets reserved by the caller, so order between jobs does not matter). */
      writes: Array<{ fd: number; off: number; data: Uint8Array[] }>;
      /** Whole files written without fsync (copies of what the writes make durable). */
      files: Array<{ path: string; data: Uint8Array[] }>;
      /** fdatasync these after the writes. */
      syncFds: number[];
    };

/** One caller's part of a folder commit: check FROM is a regular file, fsync it if asked, rename. */
export interface CommitStep {
  from?: string;
  to?: string;
  syncFile?: boolean;
}

export interface IoResult {
  fd?: number;
  size?: number;
  data?: Uint8Array;
  errors?: Array<{ code?: string; message: string } | null>;
  error?: { code?: string; message: string };
  /** lockedAppend: the lock was held by someone else, or FILE changed since EXPECT (its stamp now). */
  locked?: boolean;
  stale?: string;
  /** lockedAppend: FILE's stamp after the append (inode:size:mtimeNs) and the stamps of stampDirs. */
  stamp?: string;
  dirStamps?: string[];
  /** commit: the folder's stamp before the steps and after the fsync. */
  dirBefore?: string;
  dirAfter?: string;
}

interface Pending {
  job: IoJob;
  resolve(r: IoResult): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  busy: Pending[] | null;
  /** Busy with a batch of ordinary jobs (not urgent ones). */
  ordinary: boolean;
}

// Two per core, at most 8. More workers than that on a small machine cost more than they give:
// measured on 2 cores (ext4 without a journal, where parallel fsyncs merge nothing), draining
// 10,000 delivered messages through router + mailboxd: 8 workers 960-1,195 msg/s at 1.06-1.38
// ms CPU per message, 4 workers 1,107-1,412 msg/s at 0.84-1.14 ms; perf showed the extra ones
// spinning on the Maildir folders' locks (rwsem_spin_on_owner in open and rename).
const MAX_WORKERS = Math.min(8, Math.max(2, 2 * availableParallelism()));
const workerUrl = new URL('./io-worker.js', import.meta.url);

let queue: Pending[] = [];
let urgentQueue: Pending[] = [];
const slots: Slot[] = [];
let scheduled = false;
let batchId = 0;
let hops = 0;
let batchWorkers = false;

/** ioWorkers - how many workers this thread's pool may run (tests). */
export function ioWorkers(): number {
  return MAX_WORKERS;
}

/** batchIoWorkers - workers this thread starts from now on run under SCHED_BATCH (fmail start: shared/sched-batch.ts). */
export function batchIoWorkers(): void {
  batchWorkers = true;
}

/** ioHops - batches handed to a worker so far in this thread (tests and benchmarks). */
export function ioHops(): number {
  return hops;
}

/** warmIo - start the first worker now (servers call it at start: a thread takes tens of ms to come up). */
export function warmIo(): void {
  if (slots.length === 0) spawn();
}

/** ioError - an Error like fs's own, with the errno code kept. */
export function ioError(e: { code?: string; message: string }): NodeJS.ErrnoException {
  return Object.assign(new Error(e.message), { code: e.code });
}

/**
 * runIo - run one job in the pool; rejects with the job's error (code kept, like fs). An URGENT
 * job (the queue journal's group commit, which SMTP clients wait for) goes before ordinary ones,
 * and ordinary jobs never take the last worker, so it never waits behind a mailbox's fsyncs.
 */
export function runIo(job: IoJob, urgent = false): Promise<IoResult> {
  return new Promise<IoResult>((resolve, reject) => {
    (urgent ? urgentQueue : queue).push({ job, resolve, reject });
    if (!scheduled) {
      scheduled = true;
      // Jobs submitted in the same turn of the event loop leave together.
      queueMicrotask(dispatch);
    }
  });
}

const ordinaryBusy = (): number => slots.reduce((n, s) => n + (s.busy !== null && s.ordinary ? 1 : 0), 0);

function dispatch(): void {
  scheduled = false;
  for (;;) {
    if (urgentQueue.length === 0 && (queue.length === 0 || ordinaryBusy() >= MAX_WORKERS - 1)) return;
    let s = slots.find((x) => x.busy === null);
    if (!s && slots.length < MAX_WORKERS) s = spawn();
    if (!s) return; // the next worker to finish takes what is left
    feed(s);
  }
}

// feed - give idle slot S the next batch it may take, if any.
function feed(s: Slot): boolean {
  if (urgentQueue.length > 0) {
    const [batch, rest] = take(urgentQueue);
    urgentQueue = rest;
    send(s, batch, false);
    return true;
  }
  if (queue.length > 0 && ordinaryBusy() < MAX_WORKERS - 1) {
    const [batch, rest] = take(queue);
    queue = rest;
    send(s, batch, true);
    return true;
  }
  return false;
}

const syncs = (j: IoJob): boolean => (j.op === 'write' && j.sync === true) || j.op === 'commit' || j.op === 'lockedAppend' || (j.op === 'journal' && j.syncFds.length > 0);

// take - the next batch from Q: every job without an fsync, and the first one with; and what is left.
function take(q: Pending[]): [Pending[], Pending[]] {
  const batch: Pending[] = [];
  const rest: Pending[] = [];
  let synced = false;
  for (const p of q) {
    if (syncs(p.job)) {
      if (synced) {
        rest.push(p);
        continue;
      }
      synced = true;
    }
    batch.push(p);
  }
  return [batch, rest];
}

function send(s: Slot, batch: Pending[], ordinary: boolean): void {
  s.busy = batch;
  s.ordinary = ordinary;
  s.worker.ref();
  hops++;
  const transfer: ArrayBuffer[] = [];
  const compact = compactor(transfer);
  s.worker.postMessage({ id: ++batchId, jobs: batch.map((p) => withCompactData(p.job, compact)) }, transfer);
}

// Structured clone copies a view's WHOLE ArrayBuffer: a 4 KiB message that is a slice of a
// socket's read buffer (or of a FrameReader's concatenation of pipelined messages) cost a copy
// of all of it (measured end to end, 4,000 x 4 KiB: 170 MB cloned for 54 MB of data). A slice
// is copied into a buffer of its own size, which is then transferred, not cloned (36 MB).
function compactor(transfer: ArrayBuffer[]): (u: Uint8Array) => Uint8Array {
  const seen = new Map<Uint8Array, Uint8Array>();
  return (u) => {
    if (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength) return u;
    let c = seen.get(u);
    if (!c) {
      c = new Uint8Array(u);
      seen.set(u, c);
      transfer.push(c.buffer as ArrayBuffer);
    }
    return c;
  };
}

function withCompactData(job: IoJob, compact: (u: Uint8Array) => Uint8Array): IoJob {
  switch (job.op) {
    case 'write':
      return { ...job, data: job.data.map(compact), patches: job.patches?.map((p) => ({ at: p.at, data: compact(p.data) })) };
    case 'journal':
      return {
        ...job,
        writes: job.writes.map((w) => ({ fd: w.fd, off: w.off, data: w.data.map(compact) })),
        files: job.files.map((f) => ({ path: f.path, data: f.data.map(compact) })),
      };
    default:
      return job;
  }
}

function spawn(): Slot {
  // A file one worker opened may be written and closed by another (a DurableFile's pieces go to
  // whichever worker is free), so fds are not tracked per thread: tracked, Node warns at every
  // such close, and a worker that exited would close fds it no longer owns (reused numbers).
  const worker = new Worker(workerUrl, { trackUnmanagedFds: false, workerData: { batch: batchWorkers } });
  const slot: Slot = { worker, busy: null, ordinary: false };
  worker.unref();
  worker.on('message', (msg: { results: IoResult[] }) => {
    const batch = slot.busy ?? [];
    slot.busy = null;
    for (let i = 0; i < batch.length; i++) {
      const r = msg.results[i]!;
      if (r.error) batch[i]!.reject(ioError(r.error));
      else batch[i]!.resolve(r);
    }
    if (!feed(slot)) worker.unref();
    if (urgentQueue.length > 0 || queue.length > 0) dispatch();
  });
  const fail = (err: Error): void => {
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    for (const p of slot.busy ?? []) p.reject(err);
    slot.busy = null;
    if (queue.length > 0 || urgentQueue.length > 0) dispatch();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`I/O worker exited (${code})`)));
  slots.push(slot);
  return slot;
}
