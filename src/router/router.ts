// Router - the pop loop: alerts and a poll timer "kick" it; it pops `incoming` while fewer
// than [router] concurrency messages are in hand, and hands each to deliverMessage.

import { IpcClient } from '../ipc/index.js';
import type { Config } from '../config/schema.js';
import { ipcClient } from '../shared/ipc-setup.js';
import type { Logger } from '../shared/log.js';
import { type Clients, deliverMessage } from './deliver.js';

export class Router {
  private readonly clients: Clients;
  private active = 0;
  private draining = false;
  private again = false;
  private closed = false;
  private subscribed = false;
  private callback = '';
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private nextMailbox = 0;

  constructor(
    private config: Config,
    private readonly logger: Logger,
  ) {
    // mailboxd runs one `store` at a time per connection, so each worker gets its own.
    const mailboxd = Array.from({ length: config.router.concurrency }, () => ipcClient(config, 'mailboxd'));
    this.clients = {
      queued: ipcClient(config, 'queued'),
      authd: ipcClient(config, 'authd'),
      smtpOut: ipcClient(config, 'smtp_out'),
      mailboxd: () => mailboxd[this.nextMailbox++ % mailboxd.length]!,
      all: () => [this.clients.queued, this.clients.authd, this.clients.smtpOut, ...mailboxd],
    };
  }

  /** start - subscribe with our callback address, drain now and on every tick. */
  start(callback: string): void {
    this.callback = callback;
    this.timer = setInterval(() => this.tick(), this.config.router.poll_s * 1000);
    this.tick();
  }

  reload(next: Config): void {
    this.config = next;
  }

  /** kick - something may be waiting in `incoming`: drain (or drain again when done). */
  kick(): void {
    if (this.closed) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    void this.drain();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.wake?.();
    if (this.subscribed) await this.clients.queued.request('unsubscribe', ['incoming', this.callback]).catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const c of this.clients.all()) c.close();
  }

  private tick(): void {
    if (!this.subscribed) void this.subscribe();
    this.kick();
  }

  private async subscribe(): Promise<void> {
    const r = await this.clients.queued.request('subscribe', ['incoming', this.callback]).catch((err: Error) => ({ ok: false, params: [err.message] }));
    this.subscribed = r.ok;
    if (!r.ok) this.logger.warn({ event: 'router.subscribe_failed', reason: r.params[0] }, 'cannot subscribe to incoming yet; polling');
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      do {
        this.again = false;
        while (!this.closed) {
          if (this.active >= this.config.router.concurrency) {
            await new Promise<void>((r) => (this.wake = r));
            continue;
          }
          const popped = await this.clients.queued.request('pop', ['incoming']);
          if (!popped.ok || !popped.params[0]) break;
          const file = popped.params[0];
          this.active++;
          void deliverMessage(this.config, this.logger, this.clients, file)
            .catch((err: unknown) => this.logger.error({ event: 'router.failed', file, err: String(err) }, 'message handling failed'))
            .finally(() => {
              this.active--;
              const w = this.wake;
              this.wake = null;
              w?.();
            });
        }
      } while (this.again && !this.closed);
    } catch (err) {
      this.logger.warn({ event: 'router.pop_failed', err: String(err) }, 'cannot pop incoming; will retry');
    } finally {
      this.draining = false;
    }
  }
}

export type { IpcClient };
