// Mailhosts - which mailboxd stores a user's mail: authd's `mailhost: USER` (the users file's
// `mailhost=` extra field), '' = the configured [ipc] mailboxd. Answers are kept for a short
// while (a users-file change reaches the router within TTL_MS), at most MAX_USERS of them; each
// other host gets its own small pool of connections, as the default mailboxd does (mailboxd
// runs one `store` at a time per connection).

import type { IpcClient } from '../ipc/index.js';

const TTL_MS = 30_000;
const MAX_USERS = 100_000;

export class Mailhosts {
  private readonly known = new Map<string, { host: string; at: number }>();
  private readonly pools = new Map<string, { clients: IpcClient[]; next: number }>();

  constructor(
    private readonly authd: IpcClient,
    private readonly open: (address: string) => IpcClient,
    private readonly poolSize: number,
  ) {}

  /** hostOf - the user's mailbox host ('' = default); authd unreachable or refusing: the default. */
  async hostOf(user: string): Promise<string> {
    const k = this.known.get(user);
    if (k && Date.now() - k.at < TTL_MS) return k.host;
    const r = await this.authd.request('mailhost', [user]).catch(() => null);
    // An authd without `mailhost` (or none reachable) keeps the seed's single mailboxd.
    const host = r?.ok ? (r.params[0] ?? '') : '';
    if (this.known.size >= MAX_USERS) this.known.clear();
    this.known.set(user, { host, at: Date.now() });
    return host;
  }

  /** client - a connection to mailboxd at HOST (round robin over its pool). */
  client(host: string): IpcClient {
    let p = this.pools.get(host);
    if (!p) {
      p = { clients: Array.from({ length: this.poolSize }, () => this.open(host)), next: 0 };
      this.pools.set(host, p);
    }
    return p.clients[p.next++ % p.clients.length]!;
  }

  all(): IpcClient[] {
    return [...this.pools.values()].flatMap((p) => p.clients);
  }
}
