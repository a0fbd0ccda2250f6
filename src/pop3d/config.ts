import { z } from 'zod';

/** [pop3d] - the POP3 server. */
export const Pop3dConfig = z
  .object({
    host: z.string().default('0.0.0.0').describe('Address the POP3 listeners bind to.'),
    port: z.number().int().min(-1).max(65535).default(2110).describe('POP3 port (STLS offered); 0 picks a free port, -1 disables.'),
    pop3s_port: z.number().int().min(-1).max(65535).default(2995).describe('POP3 over implicit TLS.'),
    allow_plaintext_auth: z.boolean().default(false).describe('Allow USER/PASS and AUTH PLAIN on a connection without TLS from any client.'),
    allow_plaintext_loopback: z.boolean().default(true).describe('Allow plaintext login without TLS when the client is on loopback (127.0.0.0/8, ::1).'),
    idle_timeout_s: z
      .number()
      .positive()
      .default(600)
      .describe('Autologout: seconds a client has to send its next whole command line, counted from our last reply (a deadline: trickled bytes do not extend it; RFC 1939: at least 10 minutes).'),
    failed_login_delay_ms: z.number().int().min(0).default(1000).describe('Pause before answering a failed login (slows password guessing).'),
    max_login_failures: z.number().int().positive().default(3).describe('Failed logins allowed per connection before it is closed.'),
    max_bad_commands: z.number().int().positive().default(10).describe('Unknown, malformed or out-of-state commands allowed per connection before it is closed.'),
    max_line_bytes: z.number().int().min(64).default(1024).describe('Longest command line accepted (RFC 2449 allows 255 octets); longer lines get -ERR.'),
    max_connections: z.number().int().positive().default(500).describe('Open connections in total.'),
    max_connections_per_ip: z.number().int().positive().default(20).describe('Open connections per client address.'),
    connection_limit_exempt: z.array(z.string()).default(['127.0.0.1', '::1']).describe('Client addresses the per-address limit does not apply to (as [smtpd] connection_limit_exempt).'),
  })
  .strict();
export type Pop3dConfig = z.infer<typeof Pop3dConfig>;
