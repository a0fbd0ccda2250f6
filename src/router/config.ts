import { z } from 'zod';

/** [router] - moves mail from `incoming` to mailboxd or smtp-out. */
export const RouterConfig = z
  .object({
    /** Messages handled at once. */
    concurrency: z.number().int().positive().default(8),
  })
  .strict();
export type RouterConfig = z.infer<typeof RouterConfig>;
