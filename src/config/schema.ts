// The configuration schema: one TOML file, every key with a default (DESIGN.md "Defaults").
// Each server owns its section's schema in src/<server>/config.ts.

import os from 'node:os';

import { z } from 'zod';

import { AuthdConfig } from '../authd/config.js';
import { ImapdConfig } from '../imapd/config.js';
import { DkimConfig, DnsConfig, MailAuthConfig, MtaStsConfig } from '../mail/auth/config.js';
import { MailboxdConfig } from '../mailboxd/config.js';
import { Pop3dConfig } from '../pop3d/config.js';
import { QueuedConfig } from '../queued/config.js';
import { RouterConfig } from '../router/config.js';
import { SmtpOutConfig } from '../smtp-out/config.js';
import { SmtpdConfig } from '../smtpd/config.js';

const ipcAddress = z.string().regex(/^(socket:\/\/.+:\d+|unix:\/\/\/.+)$/, 'an IPC address: socket://HOST:PORT or unix:///path');

export const IpcConfig = z
  .object({
    authd: ipcAddress.default('socket://127.0.0.1:14100').describe('IPC address of authd (socket://HOST:PORT or unix:///path).'),
    queued: ipcAddress.default('socket://127.0.0.1:14101').describe('IPC address of queued.'),
    smtp_out: ipcAddress.default('socket://127.0.0.1:14102').describe('IPC address of smtp-out.'),
    mailboxd: ipcAddress.default('socket://127.0.0.1:14103').describe('IPC address of mailboxd.'),
    router: ipcAddress.default('socket://127.0.0.1:14104').describe('Where the router listens for `alert` callbacks from queued.'),
    imapd: ipcAddress.default('socket://127.0.0.1:14105').describe('Where imapd listens for `changed` notifications from mailboxd.'),
    secret: z
      .string()
      .default('')
      .describe(
        'Shared secret every IPC connection presents first (`hello: SECRET`); "" = the one generated into DATA/ipc.secret (mode 0600) on first start; "off" = none (loopback only). FMAIL_IPC_SECRET overrides.',
      ),
    timeout_ms: z.number().int().positive().default(30_000).describe('Client side: silence allowed while waiting for a reply.'),
    idle_timeout_s: z.number().positive().default(300).describe('Server side: idle connections are closed after this.'),
    max_connections: z.number().int().positive().default(1000).describe('Server side: connections accepted at once, per server.'),
    announce_s: z
      .number()
      .min(0)
      .default(60)
      .describe('Every `fmail start` process tells queued which servers it runs and where (`announce`) this often, so `fmail status` shows every host; 0 = off.'),
  })
  .strict();

export const LogConfig = z
  .object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level: fatal, error, warn, info, debug, trace or silent.'),
    file: z.string().default('fmail.log').describe('Log file, relative to data_dir unless absolute; "-" = standard output. `fmail trace` reads it.'),
  })
  .strict();

export const TlsConfig = z
  .object({
    cert: z.string().default('').describe('PEM certificate and key; empty = a self-signed pair made in DATA/tls on first start.'),
    key: z.string().default('').describe('PEM private key for `cert`.'),
  })
  .strict();

export const MetricsConfig = z
  .object({
    listen: z.string().default('127.0.0.1:9925').describe('Prometheus endpoint ("" = off).'),
  })
  .strict();

export const ConfigSchema = z
  .object({
    data_dir: z.string().default('./data').describe('Spool, Maildirs, users and keys live here. FMAIL_DATA overrides the default.'),
    hostname: z.string().default(os.hostname()).describe('Name used in SMTP greetings, Received headers and bounces.'),
    threads: z
      .boolean()
      .default(true)
      .describe('fmail start with every server: run smtpd, pop3d and imapd in a second thread of the process, so it uses two cores. Its other threads (disk I/O workers, V8 and libuv helpers) run under SCHED_BATCH on Linux (util-linux chrt), so their wake-ups do not preempt the event loops.'),
    log: LogConfig.prefault({}),
    ipc: IpcConfig.prefault({}),
    tls: TlsConfig.prefault({}),
    metrics: MetricsConfig.prefault({}),
    authd: AuthdConfig.prefault({}),
    queued: QueuedConfig.prefault({}),
    mailboxd: MailboxdConfig.prefault({}),
    smtpd: SmtpdConfig.prefault({}),
    pop3d: Pop3dConfig.prefault({}),
    imapd: ImapdConfig.prefault({}),
    smtp_out: SmtpOutConfig.prefault({}),
    router: RouterConfig.prefault({}),
    dns: DnsConfig.prefault({}),
    dkim: DkimConfig.prefault({}),
    mail_auth: MailAuthConfig.prefault({}),
    mta_sts: MtaStsConfig.prefault({}),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
