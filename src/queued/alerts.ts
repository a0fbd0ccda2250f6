// Alerter - subscriptions and `alert: QUEUE` callbacks.
//
// Subscriptions persist in SPOOL/subscriptions.json (rewritten atomically on each change), so
// they survive a restart. Each (queue, callback) pair keeps one persistent IpcClient. An alert
// that cannot be delivered is retried with exponential back-off (alert_backoff_s, doubling);
// after alert_max_failures failures in a row the subscription is dropped. Alerts asked for while
// one is in flight or waiting to retry are coalesced into one more.

import { readFileSync } from 'node:fs';

import { IpcClient, parseAddress } from '../ipc/index.js';
import { writeFileAtomic } from '../shared/durable.js';
import type { Logger } from '../shared/log.js';

export interface AlerterOptions {
  file: string;
  backoffMs: number;
  maxFailures: number;
  secret?: string;
  logger: Logger;
}

/** Target - one subscriber of one queue, and the state of alerts to it. */
class Target {
  client: IpcClient;
  inFlight = false;
  again = false;
  failures = 0;
  timer: NodeJS.Timeout | null = null;

  constructor(
    readonly queue: string,
    readonly callback: string,
    secret: string | undefined,
  ) {
    this.client = new IpcClient(callback, { timeoutMs: 10_000, connectTimeoutMs: 5000, secret, inThread: true });
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.client.close();
  }
}

export class Alerter {
  private readonly targets = new Map<string, Target>();
  private saving: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: AlerterOptions) {
    let saved: Record<string, string[]> = {};
    try {
      saved = JSON.parse(readFileSync(opts.file, 'utf8')) as Record<string, string[]>;
    } catch {
      // No subscriptions yet (or an unreadable file: start without, subscribers re-subscribe).
    }
    for (const [queue, callbacks] of Object.entries(saved)) {
      for (const cb of Array.isArray(callbacks) ? callbacks : []) {
        try {
          parseAddress(cb);
          this.targets.set(key(queue, cb), new Target(queue, cb, opts.secret));
        } catch {
          opts.logger.warn({ event: 'queued.bad_subscription', queue, callback: cb }, 'ignoring a saved subscription');
        }
      }
    }
  }

  /** subscribe - add (or keep) CALLBACK for QUEUE; persisted before it resolves. */
  async subscribe(queue: string, callback: string): Promise<void> {
    parseAddress(callback);
    const k = key(queue, callback);
    if (!this.targets.has(k)) this.targets.set(k, new Target(queue, callback, this.opts.secret));
    await this.save();
  }

  /** unsubscribe - remove CALLBACK from QUEUE; false when it was not subscribed. */
  async unsubscribe(queue: string, callback: string): Promise<boolean> {
    const t = this.targets.get(key(queue, callback));
    if (!t) return false;
    this.targets.delete(key(queue, callback));
    t.close();
    await this.save();
    return true;
  }

  subscribers(queue: string): string[] {
    return [...this.targets.values()].filter((t) => t.queue === queue).map((t) => t.callback);
  }

  /** alert - tell every subscriber of QUEUE that it has new mail (one subscriber if CALLBACK). */
  alert(queue: string, callback?: string): void {
    for (const t of this.targets.values()) {
      if (t.queue !== queue || (callback !== undefined && t.callback !== callback)) continue;
      if (t.inFlight || t.timer) t.again = true;
      else void this.send(t);
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.targets.values()) t.close();
  }

  private async send(t: Target): Promise<void> {
    if (this.closed) return;
    t.inFlight = true;
    t.again = false;
    try {
      const r = await t.client.request('alert', [t.queue]);
      if (!r.ok) this.opts.logger.info({ event: 'queued.alert_refused', queue: t.queue, callback: t.callback, reply: r.params[0] }, 'subscriber answered error');
      t.failures = 0;
      t.inFlight = false;
      this.opts.logger.debug({ event: 'queued.alert', queue: t.queue, callback: t.callback }, 'alert sent');
      if (t.again) void this.send(t);
    } catch (err) {
      t.inFlight = false;
      t.failures++;
      if (this.targets.get(key(t.queue, t.callback)) !== t) return;
      if (t.failures >= this.opts.maxFailures) {
        this.opts.logger.warn({ event: 'queued.subscriber_dropped', queue: t.queue, callback: t.callback, err: String(err) }, 'subscriber unreachable; dropped');
        this.targets.delete(key(t.queue, t.callback));
        t.close();
        void this.save().catch(() => {});
        return;
      }
      const delay = this.opts.backoffMs * 2 ** (t.failures - 1);
      this.opts.logger.info({ event: 'queued.alert_retry', queue: t.queue, callback: t.callback, failures: t.failures, delay_ms: delay }, 'alert failed; will retry');
      t.timer = setTimeout(() => {
        t.timer = null;
        void this.send(t);
      }, delay);
      t.timer.unref();
    }
  }

  // Writes are chained so the file always ends up with the latest set.
  private save(): Promise<void> {
    const next = this.saving.then(async () => {
      const out: Record<string, string[]> = {};
      for (const t of this.targets.values()) (out[t.queue] ??= []).push(t.callback);
      await writeFileAtomic(this.opts.file, JSON.stringify(out, null, 1) + '\n');
    });
    this.saving = next.catch(() => {});
    return next;
  }
}

function key(queue: string, callback: string): string {
  return `${queue}\n${callback}`;
}
