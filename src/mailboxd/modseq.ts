// MODSEQ clock: max(previous + 1, wall clock in microseconds). Values only grow, also across
// restarts (the clock moved on meanwhile), so nothing needs persisting: after a restart every
// message simply shows a new, larger MODSEQ. Stays below 2^53 for the next 200 years.

let last = 0;

/** nextModseq - a MODSEQ larger than every earlier one. */
export function nextModseq(): number {
  const now = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  last = now > last ? now : last + 1;
  return last;
}

/** Mutex - one async section at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.catch(() => {}).then(fn);
    this.tail = next;
    return next;
  }
}
