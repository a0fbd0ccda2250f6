// crypt worker - SHA-crypt verification for crypt-pool.ts: recompute the hash with the stored
// salt and rounds, compare with timingSafeEqual.

import { timingSafeEqual } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

import { encrypt } from 'unixcrypt';

function check(password: string, hash: string): boolean {
  const setting = hash.slice(0, hash.lastIndexOf('$')); // `$6$[rounds=N$]salt`
  const a = Buffer.from(encrypt(password, setting));
  const b = Buffer.from(hash);
  return a.length === b.length && timingSafeEqual(a, b);
}

parentPort?.on('message', (m: { id: number; password: string; hash: string }) => {
  let ok = false;
  try {
    ok = check(m.password, m.hash);
  } catch {
    ok = false;
  }
  parentPort?.postMessage({ id: m.id, ok });
});
