// Deadline - the "per-record deadline" of Postfix (smtpd_per_record_deadline) for any line
// protocol: a client has a fixed time to deliver a whole unit of input (a command line, a
// message), counted from the moment the server waits for it. Unlike a socket idle timeout,
// bytes trickled in do not extend it, so a client sending one byte a second cannot hold a
// connection open (slow-loris).
//
// For bulk input (SMTP DATA) a minimum average rate may be given, as Postfix's
// smtpd_min_data_rate: every byte received adds 1/minRate seconds to the deadline, so a large
// message sent at a decent rate is never cut, and a trickle is.
//
// Used by smtpd (command lines, DATA), pop3d and imapd (command lines). One timer per
// connection, re-armed only when it fires or a new unit starts.

export interface DeadlineOptions {
  /** Called once when the deadline passes while the client owes input. */
  onExpire(): void;
  /** True while the client waits for us (a handler running, output not yet flushed): not its fault, the clock restarts. */
  held?(): boolean;
}

export interface RateOptions {
  /** Bytes per second the client must keep up on average. */
  minRate: number;
  /** Bytes received so far in this unit. */
  bytes(): number;
}

export class Deadline {
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private budgetMs = 0;
  private rate: RateOptions | null = null;
  private expired = false;

  constructor(private readonly opts: DeadlineOptions) {}

  /** start - the client has MS from now to deliver the next unit (extended by RATE, if given). */
  start(ms: number, rate?: RateOptions): void {
    if (this.expired) return;
    this.startedAt = Date.now();
    this.budgetMs = ms;
    this.rate = rate && rate.minRate > 0 ? rate : null;
    this.arm(ms);
  }

  /** stop - the unit is in (or the connection is gone): no deadline until the next start. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** running - a deadline is counting. */
  get running(): boolean {
    return this.timer !== null;
  }

  /** dueAt - when the current unit must be complete (epoch ms), rate credit included. */
  dueAt(): number {
    const credit = this.rate ? (this.rate.bytes() * 1000) / this.rate.minRate : 0;
    return this.startedAt + this.budgetMs + credit;
  }

  private arm(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), Math.max(1, Math.ceil(ms)));
    this.timer.unref();
  }

  private check(): void {
    this.timer = null;
    const left = this.dueAt() - Date.now();
    if (left > 0) return this.arm(left);
    if (this.opts.held?.()) return this.start(this.budgetMs, this.rate ?? undefined);
    this.expired = true;
    this.opts.onExpire();
  }
}
