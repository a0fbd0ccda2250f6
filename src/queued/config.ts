import { z } from 'zod';

/** [queued] - the Mail Queue Server. */
export const QueuedConfig = z
  .object({
    /** Spool folder; relative paths are under data_dir. */
    spool: z.string().default('queue'),
    /** Seconds a popped message stays leased before it goes back to the queue. */
    lease_s: z.number().positive().default(600),
    /** Seconds before a slot that was never pushed is removed. */
    slot_grace_s: z.number().positive().default(3600),
    /** Seconds before the first retry of an alert a subscriber did not take; doubles each time. */
    alert_backoff_s: z.number().positive().default(1),
    /** Failed alert attempts in a row after which a subscription is dropped. */
    alert_max_failures: z.number().int().positive().default(8),
    /** Most messages `fmail queue list` shows per queue (qlist), to bound the reply. */
    list_limit: z.number().int().positive().default(1000),
  })
  .strict();
export type QueuedConfig = z.infer<typeof QueuedConfig>;
