// HostRoutedStore - the MailStore of users on several mailbox hosts (issue 18): authd's `auth`
// answer names a user's mailboxd when the users file gives one (`mailhost=`); every login records
// it here (kept until the user's next login) just before the session opens the user's mail, and
// open() then uses that host's own
// MailboxdStore (a pool and a watch hub of its own, made on first use). Users without one go to
// the configured mailboxd, as before.

import type { IpcClient } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';
import { MailboxdStore } from './mailboxd-store.js';
import type { MailStore, UserMail } from './store.js';
import { WatchHub } from './watch-hub.js';

/** Users whose host is remembered (from their last login); beyond this the memory starts over. */
const MAX_PENDING = 10_000;

interface HostStore {
  store: MailboxdStore;
  hub: WatchHub;
  pool: IpcClient[];
}

export class HostRoutedStore implements MailStore {
  private readonly hosts = new Map<string, HostStore>();
  private readonly pending = new Map<string, string>();

  constructor(
    private readonly fallback: MailStore,
    private readonly connect: (address: string) => IpcClient,
    private readonly poolSize: number,
    private readonly callback: () => string,
    private readonly logger: Logger,
  ) {}

  /** noteHost - USER just logged in; HOST is its mailboxd ('' = the configured one). */
  noteHost(user: string, host: string): void {
    if (!host) {
      this.pending.delete(user);
      return;
    }
    if (this.pending.size >= MAX_PENDING) this.pending.clear();
    this.pending.set(user, host);
  }

  open(user: string): Promise<UserMail> {
    const host = this.pending.get(user);
    if (!host) return this.fallback.open(user);
    let h = this.hosts.get(host);
    if (!h) {
      const pool = Array.from({ length: this.poolSize }, () => this.connect(host));
      const hub = new WatchHub(pool[0]!, this.logger);
      hub.start(this.callback());
      h = { store: new MailboxdStore(pool, hub), hub, pool };
      this.hosts.set(host, h);
    }
    return h.store.open(user);
  }

  /** changed - a mailboxd's `changed` callback: every hub gets it (a hub ignores users it does not watch). */
  changed(user: string, folder: string): void {
    for (const h of this.hosts.values()) h.hub.changed(user, folder);
  }

  close(): void {
    for (const h of this.hosts.values()) {
      h.hub.close();
      for (const c of h.pool) c.close();
    }
  }
}
