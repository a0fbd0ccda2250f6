// WatchHub - mailboxd change notifications for every session of this imapd.
//
// One mailboxd `watch` per (user, folder) however many sessions have it selected, with our
// IPC address as the callback; mailboxd then sends `changed: USER ; FOLDER ; ...` there and
// the hub wakes those sessions (IDLE reports at once; others at their next command). No disk
// polling: the only timer is the "watch renewal" every few minutes, which mailboxd needs
// (its watches expire after 30 minutes, and a restarted mailboxd has forgotten them) and which
// also wakes the sessions, so a notification lost in a restart delays a change by at most
// one renewal period.

import type { IpcClient } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';

const RENEW_MS = 4 * 60_000;

export class WatchHub {
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly timer: NodeJS.Timeout;
  private callback = '';

  constructor(
    private readonly mailboxd: IpcClient,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => this.renew(), RENEW_MS);
    this.timer.unref();
  }

  /** start - where mailboxd should send `changed` (our IPC listener, as bound). */
  start(callback: string): void {
    this.callback = callback;
  }

  watch(user: string, folder: string, onChange: () => void): () => void {
    const key = `${user}\0${folder}`;
    let set = this.watchers.get(key);
    if (!set) {
      set = new Set();
      this.watchers.set(key, set);
      void this.send('watch', user, folder);
    }
    set.add(onChange);
    return () => {
      const s = this.watchers.get(key);
      if (!s) return;
      s.delete(onChange);
      if (s.size === 0) {
        this.watchers.delete(key);
        void this.send('unwatch', user, folder);
      }
    };
  }

  /** changed - mailboxd's alert: wake every session that has the folder selected. */
  changed(user: string, folder: string): void {
    for (const fn of this.watchers.get(`${user}\0${folder}`) ?? []) fn();
  }

  private async send(what: 'watch' | 'unwatch', user: string, folder: string): Promise<void> {
    if (!this.callback) return;
    const r = await this.mailboxd.request(what, [user, folder, this.callback]).catch((err: Error) => ({ ok: false, params: [err.message] }));
    if (!r.ok) this.logger.warn({ event: 'imapd.watch_failed', user, folder, reason: r.params[0] }, `mailboxd ${what} failed`);
  }

  /** renew - re-send every watch, and let each session check for what it may have missed. */
  private renew(): void {
    for (const key of this.watchers.keys()) {
      const [user, folder] = key.split('\0') as [string, string];
      void this.send('watch', user, folder);
      this.changed(user, folder);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
