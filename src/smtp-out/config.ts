import { z } from 'zod';

/** [smtp_out] - the SMTP Out Server. */
export const SmtpOutConfig = z
  .object({
    queue_colocated: z
      .boolean()
      .default(true)
      .describe("queued's spool is on this host: read queue files in place (false = fetch each with `get` into a copy under DATA/smtp-out/, write new ones with `put` only, and do not look at [queued] spool)."),
    routes: z.record(z.string(), z.string()).default({}).describe('Transport map: domain -> "host:port", used instead of MX lookup.'),
    relay_host: z.string().default('').describe('Send all remote mail through this host:port ("" = deliver by MX).'),
    relay_user: z.string().default('').describe('AUTH user name for relay_host ("" = no AUTH).'),
    relay_password: z.string().default('').describe('AUTH password for relay_host; sent only over TLS (with relay_user set, TLS is required: no TLS = deferred).'),
    relay_tls_verify: z
      .boolean()
      .default(true)
      .describe("With relay_user set: verify the relay's certificate against the system CAs or relay_ca_file (false = accept any certificate, e.g. self-signed; still encrypted)."),
    relay_ca_file: z.string().default('').describe('PEM file of the CAs that may sign the relay\'s certificate ("" = the system CAs); relative paths are under data_dir.'),
    port: z.number().int().min(1).max(65535).default(25).describe('SMTP port of MX hosts.'),
    first_retry_s: z.number().positive().default(300).describe("First retry after a temporary failure, in seconds (then doubling with the message's age)."),
    max_backoff_s: z.number().positive().default(4000).describe('Longest wait between two attempts, in seconds.'),
    max_age_s: z.number().positive().default(432_000).describe('A message still undelivered this many seconds after arrival is bounced.'),
    poll_s: z.number().positive().default(5).describe("Seconds between polls of `outgoing` (besides queued's alerts)."),
    concurrency: z.number().int().positive().default(100).describe('Queue files in hand at once (being delivered or waiting for a session), all destinations together.'),
    destination_concurrency: z.number().int().positive().default(4).describe('Parallel SMTP connections to one destination.'),
    destination_jobs_limit: z.number().int().positive().default(20).describe('Queue files one destination may hold in hand (waiting or being sent); more go back to the queue for a few seconds, so a slow or dead destination holds only its share of `concurrency`.'),
    destination_rate_delay: z.number().nonnegative().default(0).describe('Seconds between two deliveries to the same destination (0 = no limit); > 0 also means one connection per destination, as in Postfix.'),
    dead_destination_s: z.number().nonnegative().default(60).describe('After every host of a destination failed to connect, its mail is deferred without a new attempt for this many seconds (dead-destination cache).'),
    max_sessions: z.number().int().positive().default(100).describe('SMTP sessions at once, all destinations together; when reached, destinations take turns (round robin).'),
    connection_cache_s: z.number().nonnegative().default(2).describe('Seconds an idle connection is kept for reuse (connection cache).'),
    connect_timeout_s: z.number().positive().default(30).describe('Seconds to wait for a TCP connection and for the greeting.'),
    command_timeout_s: z.number().positive().default(300).describe('Seconds of silence allowed from the remote server during a session.'),
  })
  .strict();
export type SmtpOutConfig = z.infer<typeof SmtpOutConfig>;
