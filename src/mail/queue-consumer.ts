// QueueConsumer - the pop loop every queue consumer needs (the router on `incoming`, smtp-out
// on `outgoing`): subscribe with a callback address so queued's `alert` can "kick" it, poll on
// a timer as well so nothing waits for an alert that was lost, and pop while fewer than
// `concurrency` messages are in hand.

import { type HandlerSpec, type IpcClient, error, ok } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';

export interface QueueConsumerOptions {
  queued: IpcClient;
  queue: string;
  /** Messages in hand at once (read on every pop, so a reload applies at once). */
  concurrency(): number;
  pollMs: number;
  logger: Logger;
  /** Prefix of this consumer's log events, e.g. `router`. */
  events: string;
  /** Take one popped PATH; call `release` once its slot is free again. Must not throw. */
  take(path: string, release: () => void): Promise<void>;
}

export class QueueConsumer {
  private active = 0;
  private draining = false;
  private again = false;
  private closed = false;
  private subscribed = false;
  private callback = '';
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: QueueConsumerOptions) {}

  /** Messages popped and not yet released. */
  get inFlight(): number {
    return this.active;
  }

  /** start - subscribe with our callback address; drain now and on every poll. */
  start(callback: string): void {
    this.callback = callback;
    this.timer = setInterval(() => this.tick(), this.opts.pollMs);
    this.tick();
  }

  /** kick - something may be waiting: drain (or drain again once the current pass ends). */
  kick(): void {
    if (this.closed) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    void this.drain();
  }

  /** close - stop popping, unsubscribe, wait (bounded) for the messages in hand. */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.wake?.();
    if (this.subscribed) await this.opts.queued.request('unsubscribe', [this.opts.queue, this.callback]).catch(() => undefined);
    const deadline = Date.now() + graceMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  private tick(): void {
    if (!this.subscribed) void this.subscribe();
    this.kick();
  }

  private async subscribe(): Promise<void> {
    const r = await this.opts.queued.request('subscribe', [this.opts.queue, this.callback]).catch((err: Error) => ({ ok: false, params: [err.message] }));
    this.subscribed = r.ok;
    if (!r.ok) {
      this.opts.logger.warn({ event: `${this.opts.events}.subscribe_failed`, reason: r.params[0] }, `cannot subscribe to ${this.opts.queue} yet; polling`);
    }
  }

  private release(): void {
    this.active--;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      do {
        this.again = false;
        while (!this.closed) {
          if (this.active >= this.opts.concurrency()) {
            await new Promise<void>((r) => (this.wake = r));
            continue;
          }
          const popped = await this.opts.queued.request('pop', [this.opts.queue]);
          if (!popped.ok || !popped.params[0]) break;
          this.active++;
          let released = false;
          await this.opts.take(popped.params[0], () => {
            if (released) return;
            released = true;
            this.release();
          });
        }
      } while (this.again && !this.closed);
    } catch (err) {
      this.opts.logger.warn({ event: `${this.opts.events}.pop_failed`, err: String(err) }, `cannot pop ${this.opts.queue}; will retry`);
    } finally {
      this.draining = false;
    }
  }
}

/** alertHandler - the `alert: QUEUE` message queued sends to a subscriber: kick the consumer. */
export function alertHandler(queue: string, consumer: { kick(): void }): HandlerSpec {
  return {
    params: 1,
    handle: (c) => {
      if (c.params[0] !== queue) return error(`not subscribed to ${c.params[0]}`);
      consumer.kick();
      return ok();
    },
  };
}
