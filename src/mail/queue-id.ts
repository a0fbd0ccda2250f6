// Queue ids: short, unique, time-ordered (like Postfix's long queue ids), safe in file names and
// log lines: 9 characters of milliseconds + 6 random ones (counting up within a millisecond), in
// a 31-letter alphabet without vowels.

import { createHash, randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZ';

function base(n: number, width: number): string {
  let s = '';
  for (let i = 0; i < width; i++) {
    s = ALPHABET[n % ALPHABET.length]! + s;
    n = Math.floor(n / ALPHABET.length);
  }
  return s;
}

// Random bytes drawn 4 KiB at a time: one randomBytes(4) per message cost as much as the rest
// of the id (a CPU profile of the main thread under load: 7.5 us per message).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function random32(): number {
  if (poolAt + 4 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const r = pool.readUInt32BE(poolAt);
  poolAt += 4;
  return r;
}

/** Ids the random part can tell apart: 6 base-32 characters. */
const SPACE = ALPHABET.length ** 6;
let lastMs = 0;
let lastRandom = 0;

/**
 * newQueueId - e.g. `1K9TQ4ZBX7RMQ2`. Strictly increasing in this thread: a second id in the same
 * millisecond (or after the clock stepped back) takes the previous random part plus one, so ids
 * sort in the order they were made (queued recovers messages in qid order); a fresh random part
 * starts each new millisecond, keeping ids of different processes and hosts apart.
 */
export function newQueueId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    lastRandom = random32() % SPACE;
  } else if (++lastRandom >= SPACE) {
    lastMs++;
    lastRandom = random32() % SPACE;
  }
  return base(lastMs, 9) + base(lastRandom, 6);
}

/**
 * derivedQueueId - a queue id that is a function of PARTS (same shape as newQueueId's), for
 * mail we generate: a bounce of the same failure queued twice (a crash before `done`) carries
 * the same qid both times, so mailboxd stores it once.
 */
export function derivedQueueId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  let s = '';
  for (let i = 0; i < 15; i++) s += ALPHABET[h[i]! % ALPHABET.length]!;
  return s;
}
