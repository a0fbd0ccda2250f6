// DirSyncer - group commit for one directory: every caller whose rename or unlink is done asks
// for a directory fsync; callers arriving while one runs share the next one. So N pushes that
// arrive together cost one directory flush, not N (Postfix's queue manager does the same).

import { promises as fsp } from 'node:fs';

let totalSyncs = 0;

/** dirSyncCount - directory fsyncs done by this process (tests check that batches share them). */
export function dirSyncCount(): number {
  return totalSyncs;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class DirSyncer {
  private waiters: Waiter[] = [];
  private running = false;

  constructor(readonly dir: string) {}

  /** sync - resolves once a directory fsync that began after this call has completed. */
  sync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.waiters.length > 0) {
      const batch = this.waiters.splice(0);
      try {
        const fh = await fsp.open(this.dir, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        totalSyncs++;
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err as Error);
      }
    }
    this.running = false;
  }
}
