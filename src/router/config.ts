import { z } from 'zod';

/** [router] - moves mail from `incoming` to mailboxd or smtp-out. */
export const RouterConfig = z
  .object({
    /** Messages handled at once. */
    concurrency: z.number().int().positive().default(8),
    /** Seconds between polls of `incoming` (besides queued's alerts). */
    poll_s: z.number().positive().default(5),
    /** First retry after a temporary local failure, in seconds (then doubling with the message's age). */
    retry_s: z.number().positive().default(60),
    /** Longest wait between two attempts, in seconds. */
    max_retry_s: z.number().positive().default(4000),
    /** A message still undeliverable this many seconds after arrival is bounced. */
    max_age_s: z.number().positive().default(432_000),
    /** Where double bounces go ("" = postmaster@ the local domain of `hostname`, or the first local domain). */
    postmaster: z.string().default(''),
  })
  .strict();
export type RouterConfig = z.infer<typeof RouterConfig>;
