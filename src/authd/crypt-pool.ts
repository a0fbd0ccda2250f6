// crypt pool - SHA-crypt verification in a worker thread, so a 5000-round `$6$` hash (tens of
// ms of pure JS in unixcrypt) never stalls the IPC event loop for other requests.

import { Worker } from 'node:worker_threads';

interface Job {
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

let worker: Worker | null = null;
const jobs = new Map<number, Job>();
let nextId = 1;

function failAll(w: Worker, err: Error): void {
  if (worker !== w) return;
  for (const j of jobs.values()) j.reject(err);
  jobs.clear();
  worker = null;
}

function getWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL('./crypt-worker.js', import.meta.url));
  w.on('message', (m: { id: number; ok: boolean }) => {
    const job = jobs.get(m.id);
    jobs.delete(m.id);
    job?.resolve(m.ok);
    if (jobs.size === 0) w.unref();
  });
  w.on('error', (err) => failAll(w, err));
  w.on('exit', () => failAll(w, new Error('crypt worker exited')));
  w.unref();
  worker = w;
  return w;
}

/** cryptVerify - unixcrypt.verify(password, hash) off the main thread. */
export function cryptVerify(password: string, hash: string): Promise<boolean> {
  const w = getWorker();
  const id = nextId++;
  w.ref(); // keep the process alive while an answer is owed
  return new Promise((resolve, reject) => {
    jobs.set(id, { resolve, reject });
    w.postMessage({ id, password, hash });
  });
}

let users = 0;

/** useCryptPool - a server that may verify SHA-crypt hashes; call the result when it closes. */
export function useCryptPool(): () => Promise<void> {
  users++;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--users <= 0) await stopCryptPool();
  };
}

/** stopCryptPool - end the worker (when no server uses it any more). */
export async function stopCryptPool(): Promise<void> {
  const w = worker;
  if (!w) return;
  failAll(w, new Error('authd stopping'));
  await w.terminate();
}
