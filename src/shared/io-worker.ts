// io-worker - one thread of the I/O pool (io-pool.ts): runs a batch of file jobs with the
// synchronous calls and answers once for the whole batch. A job is a short sequence (open,
// write, fdatasync, close, rename; or rename + fsync of a folder), so a message file costs one
// hop between threads instead of one libuv round trip per call.

import { closeSync, fdatasyncSync, fstatSync, fsyncSync, linkSync, lstatSync, lutimesSync, openSync, constants, readSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import { parentPort, threadId, workerData } from 'node:worker_threads';

import type { IoJob, IoResult } from './io-pool.js';
import { schedBatch } from './sched-batch.js';
import { dirStamp, fileStamp } from './stamp.js';

const port = parentPort!;

// In fmail start, its wake-ups must not preempt the event loop that posts its jobs (sched-batch.ts).
if ((workerData as { batch?: boolean } | null)?.batch) schedBatch();

function writeFully(fd: number, data: Uint8Array, at?: number): void {
  let off = 0;
  while (off < data.length) {
    const n = at === undefined ? writeSync(fd, data, off, data.length - off) : writeSync(fd, data, off, data.length - off, at + off);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    off += n;
  }
}

// 'a' opens an existing file for writes at given offsets (the journal's `at`): it is NOT O_APPEND
// and does not create; a caller that wants to append must pass the end offset itself.
function openFlags(flags: 'w' | 'wx' | 'a'): number {
  const base = constants.O_WRONLY | constants.O_NOFOLLOW;
  if (flags === 'a') return base;
  return base | constants.O_CREAT | constants.O_TRUNC | (flags === 'wx' ? constants.O_EXCL : 0);
}

function run(job: IoJob): IoResult {
  switch (job.op) {
    case 'write': {
      let fd = job.fd ?? -1;
      const opened = fd < 0;
      if (opened) fd = openSync(job.path!, openFlags(job.flags ?? 'w'), job.mode ?? 0o600);
      try {
        for (const d of job.data) writeFully(fd, d);
        for (const p of job.patches ?? []) writeFully(fd, p.data, p.at);
        if (job.sync) fdatasyncSync(fd);
      } catch (err) {
        if (opened || job.close) closeQuiet(fd);
        throw err;
      }
      if (!job.close) return { fd };
      closeSync(fd);
      if (job.mtime !== undefined) utimesSync(job.path!, job.mtime, job.mtime);
      if (job.renameTo) renameSync(job.path!, job.renameTo);
      return {};
    }
    case 'close':
      closeSync(job.fd);
      return {};
    case 'unlink':
      try {
        unlinkSync(job.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !job.quiet) throw err;
      }
      return {};
    case 'read': {
      const fd = openSync(job.path, constants.O_RDONLY);
      try {
        const size = fstatSync(fd).size;
        if (size > job.max) return { size };
        const buf = new Uint8Array(size);
        let got = 0;
        while (got < size) {
          const n = readSync(fd, buf, got, size - got, got);
          if (n <= 0) break;
          got += n;
        }
        return { size, data: got === size ? buf : buf.subarray(0, got) };
      } finally {
        closeSync(fd);
      }
    }
    case 'pread': {
      const buf = new Uint8Array(job.len);
      let got = 0;
      while (got < job.len) {
        const n = readSync(job.fd, buf, got, job.len - got, job.off + got);
        if (n <= 0) break;
        got += n;
      }
      return { data: got === job.len ? buf : buf.subarray(0, got) };
    }
    case 'journal': {
      for (const w of job.writes) {
        let at = w.off;
        for (const d of w.data) {
          writeFully(w.fd, d, at);
          at += d.length;
        }
      }
      for (const f of job.files) {
        const fd = openSync(f.path, openFlags('w'), 0o600);
        try {
          for (const d of f.data) writeFully(fd, d);
        } finally {
          closeSync(fd);
        }
      }
      for (const fd of job.syncFds) fdatasyncSync(fd);
      return {};
    }
    case 'lockedAppend':
      return lockedAppend(job);
    case 'commit': {
      // Each caller's moves, then one fsync of the folder for all of them (group commit). The
      // folder's stamps before and after tell the caller whether only these moves changed it.
      const errors: Array<{ code?: string; message: string } | null> = [];
      const before = dirStamp(statOrNull(job.dir));
      for (const step of job.steps) {
        try {
          if (step.from) {
            const st = lstatSync(step.from);
            if (!st.isFile()) throw Object.assign(new Error(`not a regular file: ${step.from}`), { code: 'EINVAL' });
            if (step.syncFile) {
              const fd = openSync(step.from, constants.O_RDONLY | constants.O_NOFOLLOW);
              try {
                fdatasyncSync(fd);
              } finally {
                closeSync(fd);
              }
            }
            renameSync(step.from, step.to!);
          }
          errors.push(null);
        } catch (err) {
          errors.push(errorOf(err));
        }
      }
      const dfd = openSync(job.dir, constants.O_RDONLY);
      let after: string;
      try {
        fsyncSync(dfd);
        after = dirStamp(fstatSync(dfd, { bigint: true }));
      } finally {
        closeSync(dfd);
      }
      return { errors, dirBefore: before, dirAfter: after };
    }
  }
}

const statOrNull = (p: string) => {
  try {
    return statSync(p, { bigint: true });
  } catch {
    return null;
  }
};

// lockedAppend - the uidlist's append under its dotlock in one hop: lock, check nobody else
// wrote, append, fdatasync, unlock (ten thread-pool round trips before, per batch of stores).
function lockedAppend(job: Extract<IoJob, { op: 'lockedAppend' }>): IoResult {
  if (!takeDotlock(job.lock, job.lockText)) return { locked: true };
  try {
    const before = fileStamp(statOrNull(job.file));
    if (before !== job.expect) return { stale: before };
    const fd = openSync(job.file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      writeFully(fd, Buffer.from(job.text, 'utf8'));
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return { stamp: fileStamp(statOrNull(job.file)), dirStamps: job.stampDirs.map((d) => dirStamp(statOrNull(d))) };
  } finally {
    try {
      unlinkSync(job.lock);
    } catch {
      // a stale-lock breaker took it: nothing left to remove
    }
  }
}

/**
 * takeDotlock - create LOCK (holding TEXT) unless it exists; false when someone holds it.
 * Dovecot's link() method rather than O_EXCL: a hard link of this thread's own lock file in
 * the folder's tmp/, its mtime set to now first (the lock's age is what stale checks read).
 * Creating a file cost 20 µs to 1.1 ms of system time on this machine (the most while other
 * processes deleted files), a link 15 µs; the lock is taken once per batch of stores. Without a tmp/ beside LOCK: O_EXCL.
 */
function takeDotlock(lock: string, text: string): boolean {
  const source = path.join(path.dirname(lock), 'tmp', `.dotlock.${process.pid}.${threadId}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const now = Date.now() / 1000;
      lutimesSync(source, now, now);
      linkSync(source, lock);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code !== 'ENOENT' || attempt > 0) break;
      // First use by this thread, or swept from tmp/ as stale: make it (once).
      try {
        const fd = openSync(source, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
        try {
          writeFully(fd, Buffer.from(text));
        } finally {
          closeSync(fd);
        }
      } catch {
        break;
      }
    }
  }
  let lfd: number;
  try {
    lfd = openSync(lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeFully(lfd, Buffer.from(text));
  } finally {
    closeSync(lfd);
  }
  return true;
}

function closeQuiet(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing; the first error is the one reported
  }
}

function errorOf(err: unknown): { code?: string; message: string } {
  const e = err as NodeJS.ErrnoException;
  return { code: e.code, message: e.message ?? String(err) };
}

port.on('message', (batch: { id: number; jobs: IoJob[] }) => {
  const results: IoResult[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const job of batch.jobs) {
    try {
      const r = run(job);
      if (r.data) transfer.push(r.data.buffer as ArrayBuffer);
      results.push(r);
    } catch (err) {
      results.push({ error: errorOf(err) });
    }
  }
  port.postMessage({ id: batch.id, results }, transfer);
});
