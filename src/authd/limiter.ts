// attempt limiter - the "failure window": at most N failed `auth`s per key (user, client
// address) within W seconds; past that, `too many attempts` without checking the password.
//
// Attempts in flight count too: a key with failures + in-flight >= N waits until one of its
// attempts finishes before it may start another, so a burst of pipelined guesses cannot slip
// past the limit while the first hashes are still being computed. Honest parallel logins
// of one user queue beyond N at a time (more would not run faster on a few cores anyway).

interface Entry {
  failures: number[]; // timestamps (ms), oldest first, at most N kept
  inflight: number;
  waiters: Array<() => void>;
}

export class AttemptLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private max: number,
    private windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(windowMs, 60_000)));
    this.sweeper.unref();
  }

  configure(max: number, windowMs: number): void {
    this.max = max;
    this.windowMs = windowMs;
  }

  /** acquire - false when any key is over the limit; else the attempt may go ahead (release it). */
  async acquire(keys: string[]): Promise<boolean> {
    for (let round = 0; ; round++) {
      let busy: Entry | null = null;
      for (const k of keys) {
        const e = this.entry(k);
        this.prune(e);
        if (e.failures.length >= this.max) return false;
        if (e.failures.length + e.inflight >= this.max) busy = e;
      }
      if (!busy || round > 10_000) break;
      const e = busy;
      await new Promise<void>((resolve) => e.waiters.push(resolve));
    }
    for (const k of keys) this.entry(k).inflight++;
    return true;
  }

  /** release - the attempt ended; FAILED records a failure against every key. */
  release(keys: string[], failed: boolean): void {
    const t = this.now();
    for (const k of keys) {
      const e = this.entry(k);
      e.inflight = Math.max(0, e.inflight - 1);
      if (failed) {
        e.failures.push(t);
        if (e.failures.length > this.max) e.failures.shift();
      }
      const waiters = e.waiters.splice(0);
      for (const w of waiters) w();
    }
  }

  /** forgive - clear a key's failures (a user who just logged in with the right password). */
  forgive(key: string): void {
    const e = this.entries.get(key);
    if (e) e.failures.length = 0;
  }

  /** failures - recent failures of a key (tests, diagnostics). */
  failures(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    this.prune(e);
    return e.failures.length;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private entry(k: string): Entry {
    let e = this.entries.get(k);
    if (!e) {
      e = { failures: [], inflight: 0, waiters: [] };
      this.entries.set(k, e);
    }
    return e;
  }

  private prune(e: Entry): void {
    const cutoff = this.now() - this.windowMs;
    while (e.failures.length > 0 && e.failures[0]! <= cutoff) e.failures.shift();
  }

  // Forget keys with nothing to remember, so the map stays as small as the recent failures.
  private sweep(): void {
    for (const [k, e] of this.entries) {
      this.prune(e);
      if (e.failures.length === 0 && e.inflight === 0 && e.waiters.length === 0) this.entries.delete(k);
    }
  }
}
