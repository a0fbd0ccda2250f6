// QueueConsumer - the pop loop every queue consumer needs (the router on `incoming`, smtp-out
// on `outgoing`): subscribe with a callback address so queued's `alert` can "kick" it, poll on
// a timer as well so nothing waits for an alert that was lost, and pop while fewer than
// `concurrency` messages are in hand.
//
// Lease renewal ("heartbeat"): a message still in hand half a second after its pop gets a
// `renew` (queued's default lease length), then again whenever a third of the lease queued
// reported is left, until it is released. So a slow delivery (a remote server that takes
// minutes) keeps its lease and is never handed to a second consumer while it is alive; a
// consumer that dies stops renewing (and its connection closing gives the leases back).
//
// Handed out again while in hand: a queued that restarted has forgotten our leases and pops
// the same PATH to us a second time while the first delivery still runs. It is not taken
// twice (two deliveries of one file race, and the first one's `done` would end the second's
// lease under it): the new lease is renewed and the delivery in hand finishes with it.

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
  /**
   * Take one popped PATH; call `release` once it is done with (its lease is no longer renewed,
   * its slot is free again). `unslot` frees the slot early while the lease is still renewed
   * (a message parked in memory that waits its turn). Must not throw. DATA: the message's
   * bytes when `withBytes` asked for them and it was small enough (else read PATH).
   */
  take(path: string, release: () => void, unslot: () => void, data: Buffer | null): Promise<void>;
  /** Ask queued for the bytes with the lease (`take: QUEUE ; MAX`) instead of a path to read (`pop`). */
  withBytes?: number;
}

/** First renewal of a message still in hand, after its pop. */
const FIRST_RENEW_MS = 500;
const MIN_RENEW_MS = 250;

export class QueueConsumer {
  private active = 0;
  /** Paths in hand -> when to renew their lease next. */
  private readonly leases = new Map<string, number>();
  /** Paths taken and not released yet. */
  private readonly inHand = new Set<string>();
  private renewTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private again = false;
  private closed = false;
  private subscribed = false;
  private callback = '';
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private takeWorks = true;

  constructor(private readonly opts: QueueConsumerOptions) {}

  /** Messages popped and not yet released. */
  get inFlight(): number {
    return this.active;
  }

  /** start - subscribe with our callback address; drain now and on every poll. */
  start(callback: string): void {
    this.callback = callback;
    this.timer = setInterval(() => this.tick(), this.opts.pollMs);
    this.renewTimer = setInterval(() => this.renewDue(), MIN_RENEW_MS);
    this.renewTimer.unref();
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
    // Leases stay renewed while the messages in hand finish (below), then the timer stops.
    if (this.subscribed) await this.opts.queued.request('unsubscribe', [this.opts.queue, this.callback]).catch(() => undefined);
    const deadline = Date.now() + graceMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.renewTimer) clearInterval(this.renewTimer);
  }

  /** renewDue - renew the lease of every message in hand whose renewal is due. */
  private renewDue(): void {
    const now = Date.now();
    for (const [file, at] of this.leases) {
      if (at > now) continue;
      this.leases.set(file, Number.POSITIVE_INFINITY); // one renewal in flight at a time
      this.opts.queued.request('renew', [this.opts.queue, file]).then(
        (r) => {
          if (!this.leases.has(file)) return;
          if (r.ok) {
            const left = Number(r.params[0]) * 1000;
            this.leases.set(file, Date.now() + Math.max(MIN_RENEW_MS, (Number.isFinite(left) ? left : 0) / 3));
            return;
          }
          this.leases.delete(file);
          this.opts.logger.warn({ event: `${this.opts.events}.lease_lost`, file, reason: r.params[0] }, 'lease could not be renewed; the message may be delivered twice');
        },
        // queued unreachable: try again on the next tick (a restarted queued lost the lease anyway).
        () => this.leases.has(file) && this.leases.set(file, Date.now() + MIN_RENEW_MS),
      );
    }
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

  // next - the next message: `take` (path and bytes in one answer) or `pop`; null when none.
  private async next(): Promise<{ file: string; data: Buffer | null } | null> {
    if (this.opts.withBytes && this.takeWorks) {
      const r = await this.opts.queued.requestRaw('take', [this.opts.queue, String(this.opts.withBytes)]);
      if (r.reply.ok && r.reply.params[1]) return { file: r.reply.params[1], data: r.reply.params[2] === 'file' ? null : (r.data ?? null) };
      // A queued from before `take`: pop from now on.
      if (!/unknown message/.test(r.reply.params[0] ?? '')) return null;
      this.takeWorks = false;
    }
    const popped = await this.opts.queued.request('pop', [this.opts.queue]);
    return popped.ok && popped.params[0] ? { file: popped.params[0], data: null } : null;
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
          const popped = await this.next();
          if (!popped) break;
          const { file, data } = popped;
          this.leases.set(file, Date.now() + FIRST_RENEW_MS);
          if (this.inHand.has(file)) {
            this.opts.logger.warn({ event: `${this.opts.events}.popped_again`, file }, 'handed out again while in hand (queued restarted): the delivery in hand keeps it');
            continue;
          }
          this.inHand.add(file);
          this.active++;
          let released = false;
          let slotted = true;
          const unslot = (): void => {
            if (!slotted) return;
            slotted = false;
            this.release();
          };
          await this.opts.take(
            file,
            () => {
              if (released) return;
              released = true;
              this.leases.delete(file);
              this.inHand.delete(file);
              unslot();
            },
            unslot,
            data,
          );
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
