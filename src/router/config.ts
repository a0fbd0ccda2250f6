import { z } from 'zod';

/** [router] - moves mail from `incoming` to mailboxd or smtp-out. */
export const RouterConfig = z
  .object({
    concurrency: z.number().int().positive().default(32).describe('Messages handled at once (each a mailboxd connection; many in flight let their fsyncs share journal commits).'),
    poll_s: z.number().positive().default(5).describe("Seconds between polls of `incoming` (besides queued's alerts)."),
    retry_s: z.number().positive().default(60).describe("First retry after a temporary local failure, in seconds (then doubling with the message's age)."),
    max_retry_s: z.number().positive().default(4000).describe('Longest wait between two attempts, in seconds.'),
    max_age_s: z.number().positive().default(432_000).describe('A message still undeliverable this many seconds after arrival is bounced.'),
    queue_colocated: z
      .boolean()
      .default(true)
      .describe("queued's spool is on this host: read popped messages in place (false = fetch each with `get` into a copy under DATA/router/queue-copies/, and write new ones with `put` only)."),
    postmaster: z.string().default('').describe('Where double bounces go ("" = postmaster@ the local domain of `hostname`, or the first local domain).'),
  })
  .strict();
export type RouterConfig = z.infer<typeof RouterConfig>;
