import { z } from 'zod';

/** [smtp_out] - the SMTP Out Server. */
export const SmtpOutConfig = z
  .object({
    /** Transport map: domain -> "host:port", used instead of MX lookup. */
    routes: z.record(z.string(), z.string()).default({}),
    /** Send all remote mail through this host:port ("" = deliver by MX). */
    relay_host: z.string().default(''),
  })
  .strict();
export type SmtpOutConfig = z.infer<typeof SmtpOutConfig>;
