import { z } from 'zod';

/** [smtpd] - the SMTP receiver. */
export const SmtpdConfig = z
  .object({
    queue_colocated: z
      .boolean()
      .default(true)
      .describe("queued's spool is on this host: messages over 1 MiB are written into their slot file (false = every message goes to queued with `put`, up to 64 MiB; smtpd never opens a path of queued's)."),
    host: z.string().default('0.0.0.0').describe('Address the SMTP listeners bind to.'),
    port: z.number().int().min(-1).max(65535).default(2525).describe('MX port (plain, STARTTLS offered); 0 picks a free port, -1 disables.'),
    submission_port: z.number().int().min(-1).max(65535).default(2587).describe('Submission port (STARTTLS, AUTH required).'),
    submissions_port: z.number().int().min(-1).max(65535).default(2465).describe('Submission over implicit TLS.'),
    max_message_size: z.number().int().positive().default(25 * 1024 * 1024).describe('Largest message accepted, in bytes (advertised as SIZE; larger: 552 5.3.4).'),
    max_recipients: z.number().int().positive().default(1000).describe('Recipients per message; more get 452 4.5.3.'),
    max_line_length: z.number().int().min(1000).default(65536).describe('Longest message line accepted, in bytes (RFC 5321 says 998; longer: 552 5.3.4 after DATA).'),
    max_command_length: z.number().int().min(512).default(4096).describe('Longest command line, in bytes (longer: 421 and the connection is closed).'),
    max_connections: z.number().int().positive().default(20000).describe('Client connections open at once, all listeners together (issue 9 holds 10,000 idle ones).'),
    max_connections_per_ip: z.number().int().positive().default(50).describe('Client connections open at once from one IP address.'),
    connection_limit_exempt: z.array(z.string()).default(['127.0.0.1', '::1']).describe("Client addresses the per-IP limit does not apply to (like Postfix's $mynetworks exception)."),
    command_timeout_s: z
      .number()
      .positive()
      .default(300)
      .describe("Seconds a client has to send a whole command line, counted from our last reply (a deadline, as Postfix's smtpd_per_record_deadline: trickled bytes do not extend it); then 421 4.4.2."),
    data_timeout_s: z
      .number()
      .positive()
      .default(300)
      .describe('Seconds a client may stay silent in the middle of DATA; the whole DATA must also arrive within data_timeout_s plus its size / min_data_rate, or 421 4.4.2.'),
    min_data_rate: z
      .number()
      .min(0)
      .default(500)
      .describe("Bytes per second DATA must keep up on average: each byte received adds 1/min_data_rate s to the DATA deadline (Postfix's smtpd_min_data_rate; 0 = no rate rule)."),
    max_errors: z.number().int().positive().default(20).describe("Error replies (4xx/5xx) in one session before 421 and disconnect (Postfix's hard error limit)."),
    auth_failure_delay_ms: z.number().int().min(0).default(1000).describe('Milliseconds a failed AUTH waits before its 535 (slows password guessing).'),
    allow_plaintext_auth_loopback: z.boolean().default(false).describe('Offer AUTH without TLS to clients connecting from loopback (e.g. a local webmail).'),
    enforce_sender_ownership: z.boolean().default(true).describe('Authenticated senders may only use MAIL FROM addresses they own (their own, or aliases of theirs).'),
    bare_newline: z.enum(['normalize', 'reject']).default('normalize').describe('Bare LF in message data: "normalize" to CRLF (Postfix\'s default) or "reject" with 550 5.5.2.'),
    forbid_unauth_pipelining: z
      .boolean()
      .default(true)
      .describe("Input before the greeting, pipelining without EHLO, or pipelined past a command that must end a group (EHLO, DATA, NOOP, ...; message data before 354) gets 554 5.5.0 and the connection is closed (Postfix's smtpd_forbid_unauth_pipelining; the SMTP smuggling mitigation)."),
    recipient_cache_ms: z
      .number()
      .int()
      .min(0)
      .default(100)
      .describe('Milliseconds a recipient authd confirmed as a local mailbox is accepted again without asking (bursts to one mailbox); unknown and remote recipients are always asked. 0 = ask every time.'),
    greet_pause_ms: z.number().int().min(0).default(0).describe('Milliseconds before the greeting; a client that talks earlier gets 421 (0 = greet at once).'),
    close_grace_s: z.number().positive().default(10).describe('Seconds close() waits for transactions in progress before it cuts them off.'),
  })
  .strict();
export type SmtpdConfig = z.infer<typeof SmtpdConfig>;
