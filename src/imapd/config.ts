import { z } from 'zod';

/** [imapd] - the IMAP server. */
export const ImapdConfig = z
  .object({
    host: z.string().default('0.0.0.0').describe('Address the IMAP listeners bind to.'),
    port: z.number().int().min(-1).max(65535).default(2143).describe('IMAP port (STARTTLS offered); 0 picks a free port, -1 disables.'),
    imaps_port: z.number().int().min(-1).max(65535).default(2993).describe('IMAP over implicit TLS.'),
    allow_plaintext_auth: z.boolean().default(false).describe('Allow LOGIN and AUTHENTICATE PLAIN on a connection without TLS from any client.'),
    allow_plaintext_loopback: z.boolean().default(true).describe('Allow plaintext login without TLS when the client is on loopback (127.0.0.0/8, ::1).'),
    idle_timeout_s: z.number().min(1).default(1800).describe('Autologout after this much silence once logged in, IDLE included (RFC 9051: at least 30 minutes).'),
    login_timeout_s: z.number().min(1).default(60).describe('Seconds a connection may stay silent before it has logged in.'),
    command_timeout_s: z.number().min(1).default(60).describe('Seconds one command line may take to arrive once started (literals count at their own pace: 60 s of silence).'),
    failed_login_delay_ms: z.number().int().min(0).default(1000).describe('Pause before answering a failed login (slows password guessing).'),
    max_login_failures: z.number().int().positive().default(3).describe('Failed logins allowed per connection before it is closed.'),
    max_bad_commands: z.number().int().positive().default(20).describe('Malformed, unknown or out-of-state commands allowed per connection before it is closed.'),
    max_line_bytes: z.number().int().min(1024).default(65536).describe('Longest command line accepted, literals aside (RFC 7162 asks for at least 8192); longer: BYE.'),
    max_literal_bytes: z.number().int().min(1024).default(65536).describe('Largest literal in a command other than APPEND (search strings, passwords).'),
    max_message_size: z.number().int().positive().default(52428800).describe('Largest message APPEND accepts (advertised as APPENDLIMIT); a larger literal is refused before any byte is read.'),
    max_connections: z.number().int().positive().default(2000).describe('Open connections in total.'),
    max_connections_per_ip: z.number().int().positive().default(20).describe('Open connections per client address.'),
    connection_limit_exempt: z.array(z.string()).default(['127.0.0.1', '::1']).describe('Client addresses the per-IP limit does not apply to.'),
  })
  .strict();
export type ImapdConfig = z.infer<typeof ImapdConfig>;
