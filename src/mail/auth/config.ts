// Settings of mail authentication: the shared resolver ([dns], every server), DKIM keys
// ([dkim], read by smtp-out, which signs, and by the fmail command), inbound checks
// ([mail_auth], read by smtpd only) and outbound MTA-STS ([mta_sts], read by smtp-out only).

import { z } from 'zod';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+)(:\d{1,5})?$/, 'a DNS server: "host", "host:port" or "[v6]:port"');

/** [dns] - one resolver for every lookup FancyMail makes. */
export const DnsConfig = z
  .object({
    servers: z
      .array(hostPort)
      .default([])
      .describe('DNS servers for every lookup (MX, A/AAAA, SPF, DKIM, DMARC, MTA-STS, PTR), as "host:port"; [] = the system resolver.'),
    timeout_ms: z.number().int().positive().default(5000).describe('Milliseconds one DNS query may take before it is tried again.'),
    tries: z.number().int().min(1).max(10).default(2).describe('Attempts per DNS query before it counts as a temporary error.'),
    cache_s: z.number().int().min(0).default(60).describe('Seconds an answer (or "no such record") is kept in memory, at most 10,000 of them; 0 = ask every time.'),
  })
  .strict();
export type DnsConfig = z.infer<typeof DnsConfig>;

/** [dkim] - signing keys. */
export const DkimConfig = z
  .object({
    keys_dir: z
      .string()
      .default('dkim')
      .describe('DKIM keys, DOMAIN/SELECTOR.key (signing) or .standby (published, not signing), written by `fmail dkim keygen`; relative paths are under data_dir.'),
    sign: z
      .boolean()
      .default(true)
      .describe('Sign mail from authenticated sessions and bounces with every signing key of the From domain (or its parent): relaxed/relaxed, RSA and Ed25519.'),
  })
  .strict();
export type DkimConfig = z.infer<typeof DkimConfig>;

/** [mail_auth] - SPF, DKIM, DMARC and ARC checks of mail arriving on the MX port. */
export const MailAuthConfig = z
  .object({
    check: z.boolean().default(true).describe('Check SPF (MAIL FROM and HELO), DKIM, DMARC and ARC on the MX port and add Authentication-Results; submission is not checked.'),
    authserv_id: z.string().default('').describe('Our authserv-id in Authentication-Results ("" = hostname); incoming A-R headers with it are removed.'),
    dmarc_enforce: z.boolean().default(true).describe('Refuse mail failing DMARC of a domain with p=reject (550 5.7.1 after DATA), pct honoured.'),
    spf_reject: z.boolean().default(false).describe('Refuse mail whose MAIL FROM gets SPF fail (550 5.7.23); off by default since DMARC decides.'),
    quarantine_header: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/)
      .default('X-FancyMail-Quarantine')
      .describe('Header added to mail failing DMARC of a p=quarantine domain (or p=reject when not enforced), for a filter to file as junk.'),
  })
  .strict();
export type MailAuthConfig = z.infer<typeof MailAuthConfig>;

/** [mta_sts] - RFC 8461 for outbound delivery. */
export const MtaStsConfig = z
  .object({
    enabled: z.boolean().default(true).describe("Look up the recipient domain's MTA-STS policy; `enforce` = verified TLS to a listed MX or defer, `testing` = deliver and log."),
    https_port: z.number().int().min(1).max(65535).default(443).describe('Port of the policy host mta-sts.DOMAIN (443; other values are for tests).'),
    ca_file: z.string().default('').describe('Extra CA certificates (PEM) trusted besides the system ones, for policy fetches and enforced TLS.'),
    max_cached: z.number().int().positive().default(10000).describe('Policies kept in memory (least recently used dropped).'),
  })
  .strict();
export type MtaStsConfig = z.infer<typeof MtaStsConfig>;
