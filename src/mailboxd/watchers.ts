// Watchers - change notifications, queued's alert style: a watcher names an IPC CALLBACK;
// when a watched folder changes, mailboxd connects there and sends
// `changed: USER ; FOLDER ; UIDNEXT ; HIGHESTMODSEQ ; COUNT`. Alerts per (callback, user,
// folder) are coalesced: one in flight, at most one more pending. Watches live in memory,
// expire unless renewed, and a callback failing three times in a row loses its watches.

import { IpcClient, parseAddress } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';

const TTL_MS = 30 * 60 * 1000;
const MAX_WATCHES = 10_000;
const MAX_FAILURES = 3;

export interface FolderState {
  uidnext: number;
  highestModseq: number;
  count: number;
}

interface Watch {
  user: string;
  folder: string;
  expires: number;
  inFlight: boolean;
  again: boolean;
}

class Target {
  readonly client: IpcClient;
  readonly watches = new Map<string, Watch>();
  failures = 0;

  constructor(callback: string, secret: string | undefined) {
    this.client = new IpcClient(callback, { timeoutMs: 10_000, connectTimeoutMs: 5000, secret });
  }
}

export class WatchError extends Error {}

export class Watchers {
  private readonly targets = new Map<string, Target>();
  private count = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly secret: string | undefined,
    private readonly logger: Logger,
    private readonly state: (user: string, folder: string) => FolderState | null,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  /** watch - add or renew; throws WatchError for a bad callback or too many watches. */
  watch(user: string, folder: string, callback: string): void {
    try {
      parseAddress(callback);
    } catch {
      throw new WatchError('bad callback address');
    }
    let t = this.targets.get(callback);
    const k = `${user}\0${folder}`;
    const existing = t?.watches.get(k);
    if (existing) {
      existing.expires = Date.now() + TTL_MS;
      return;
    }
    if (this.count >= MAX_WATCHES) throw new WatchError('too many watches');
    if (!t) {
      t = new Target(callback, this.secret);
      this.targets.set(callback, t);
    }
    t.watches.set(k, { user, folder, expires: Date.now() + TTL_MS, inFlight: false, again: false });
    this.count++;
  }

  unwatch(user: string, folder: string, callback: string): void {
    const t = this.targets.get(callback);
    if (t?.watches.delete(`${user}\0${folder}`)) this.count--;
    if (t && t.watches.size === 0) this.dropTarget(callback);
  }

  /** changed - tell every watcher of USER's FOLDER. */
  changed(user: string, folder: string): void {
    if (this.count === 0) return;
    const k = `${user}\0${folder}`;
    for (const [cb, t] of this.targets) {
      const w = t.watches.get(k);
      if (w) this.send(cb, t, w);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const cb of [...this.targets.keys()]) this.dropTarget(cb);
  }

  private send(cb: string, t: Target, w: Watch): void {
    if (w.inFlight) {
      w.again = true;
      return;
    }
    const s = this.state(w.user, w.folder);
    if (!s) return;
    w.inFlight = true;
    t.client
      .request('changed', [w.user, w.folder, String(s.uidnext), String(s.highestModseq), String(s.count)])
      .then((r) => {
        if (!r.ok) throw new Error(r.params[0] ?? 'refused');
        t.failures = 0;
      })
      .catch((err: unknown) => {
        t.failures++;
        this.logger.warn({ event: 'mailboxd.watch_failed', callback: cb, err: String(err), failures: t.failures }, 'change alert failed');
        if (t.failures >= MAX_FAILURES) this.dropTarget(cb);
      })
      .finally(() => {
        w.inFlight = false;
        if (w.again && this.targets.get(cb) === t) {
          w.again = false;
          this.send(cb, t, w);
        }
      });
  }

  private dropTarget(cb: string): void {
    const t = this.targets.get(cb);
    if (!t) return;
    this.count -= t.watches.size;
    this.targets.delete(cb);
    t.client.close();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [cb, t] of this.targets) {
      for (const [k, w] of t.watches) {
        if (w.expires < now) {
          t.watches.delete(k);
          this.count--;
        }
      }
      if (t.watches.size === 0) this.dropTarget(cb);
    }
  }
}
