import { z } from 'zod';

/** [queued] - the Mail Queue Server. */
export const QueuedConfig = z
  .object({
    backend: z.enum(['file', 'postgres']).default('file').describe('Where messages live: "file" (the spool folder) or "postgres" (tables in postgres_url; several queued may share one database). Schema: `fmail db migrate`.'),
    postgres_url: z.string().default('').describe('PostgreSQL connection URL for backend = "postgres", e.g. "postgres://fmail:secret@db.example/fmail".'),
    spool: z.string().default('queue').describe('Spool folder; relative paths are under data_dir. With backend = "postgres": slots (tmp/) and the local copies pop hands out (cache/).'),
    lease_s: z.number().positive().default(600).describe('Seconds a popped message stays leased before it goes back to the queue.'),
    slot_grace_s: z.number().positive().default(3600).describe('Seconds before a slot that was never pushed is removed.'),
    alert_backoff_s: z.number().positive().default(1).describe('Seconds before the first retry of an alert a subscriber did not take; doubles each time.'),
    alert_max_failures: z.number().int().positive().default(8).describe('Failed alert attempts in a row after which a subscription is dropped.'),
    list_limit: z.number().int().positive().default(1000).describe('Most messages `fmail queue list` shows per queue (qlist), to bound the reply.'),
  })
  .strict();
export type QueuedConfig = z.infer<typeof QueuedConfig>;
