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
  })
  .strict();
export type QueuedConfig = z.infer<typeof QueuedConfig>;
