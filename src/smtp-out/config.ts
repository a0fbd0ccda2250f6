import { z } from 'zod';

/** [smtp_out] - the SMTP Out Server. */
export const SmtpOutConfig = z
  .object({
    /** Transport map: domain -> "host:port", used instead of MX lookup. */
    routes: z.record(z.string(), z.string()).default({}),
    /** Send all remote mail through this host:port ("" = deliver by MX). */
    relay_host: z.string().default(''),
    /** AUTH user name for relay_host ("" = no AUTH). */
    relay_user: z.string().default(''),
    /** AUTH password for relay_host. */
    relay_password: z.string().default(''),
    /** SMTP port of MX hosts. */
    port: z.number().int().min(1).max(65535).default(25),
    /** First retry after a temporary failure, in seconds (then doubling with the message's age). */
    first_retry_s: z.number().positive().default(300),
    /** Longest wait between two attempts, in seconds. */
    max_backoff_s: z.number().positive().default(4000),
    /** A message still undelivered this many seconds after arrival is bounced. */
    max_age_s: z.number().positive().default(432_000),
    /** Seconds between polls of `outgoing` (besides queued's alerts). */
    poll_s: z.number().positive().default(5),
    /** Recipients being delivered at once, all destinations together. */
    concurrency: z.number().int().positive().default(100),
    /** Parallel SMTP connections to one destination. */
    destination_concurrency: z.number().int().positive().default(4),
    /** Seconds an idle connection is kept for reuse (connection cache). */
    connection_cache_s: z.number().nonnegative().default(2),
    /** Seconds to wait for a TCP connection and for the greeting. */
    connect_timeout_s: z.number().positive().default(30),
    /** Seconds of silence allowed from the remote server during a session. */
    command_timeout_s: z.number().positive().default(300),
  })
  .strict();
export type SmtpOutConfig = z.infer<typeof SmtpOutConfig>;
