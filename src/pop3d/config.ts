import { z } from 'zod';

/** [pop3d] - the POP3 server. */
export const Pop3dConfig = z
  .object({
    host: z.string().default('0.0.0.0'),
    /** POP3 port (STLS offered); 0 picks a free port, -1 disables. */
    port: z.number().int().min(-1).max(65535).default(2110),
    /** POP3 over implicit TLS. */
    pop3s_port: z.number().int().min(-1).max(65535).default(2995),
    /** Allow USER/PASS and AUTH PLAIN on a connection without TLS from any client. */
    allow_plaintext_auth: z.boolean().default(false),
    /** Allow plaintext login without TLS when the client is on loopback (127.0.0.0/8, ::1). */
    allow_plaintext_loopback: z.boolean().default(true),
    /** Autologout after this much silence (RFC 1939: at least 10 minutes). */
    idle_timeout_s: z.number().positive().default(600),
    /** Pause before answering a failed login (slows password guessing). */
    failed_login_delay_ms: z.number().int().min(0).default(1000),
    /** Failed logins allowed per connection before it is closed. */
    max_login_failures: z.number().int().positive().default(3),
    /** Unknown, malformed or out-of-state commands allowed per connection before it is closed. */
    max_bad_commands: z.number().int().positive().default(10),
    /** Longest command line accepted (RFC 2449 allows 255 octets); longer lines get -ERR. */
    max_line_bytes: z.number().int().min(64).default(1024),
    /** Open connections, in total and per client address. */
    max_connections: z.number().int().positive().default(500),
    max_connections_per_ip: z.number().int().positive().default(20),
  })
  .strict();
export type Pop3dConfig = z.infer<typeof Pop3dConfig>;
