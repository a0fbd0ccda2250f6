// The configuration schema: one TOML file, every key with a default (DESIGN.md "Defaults").
// Each server owns its section's schema in src/<server>/config.ts.

import os from 'node:os';

import { z } from 'zod';

import { AuthdConfig } from '../authd/config.js';
import { MailboxdConfig } from '../mailboxd/config.js';
import { Pop3dConfig } from '../pop3d/config.js';
import { QueuedConfig } from '../queued/config.js';
import { RouterConfig } from '../router/config.js';
import { SmtpOutConfig } from '../smtp-out/config.js';
import { SmtpdConfig } from '../smtpd/config.js';

const ipcAddress = z.string().regex(/^(socket:\/\/.+:\d+|unix:\/\/\/.+)$/, 'an IPC address: socket://HOST:PORT or unix:///path');

export const IpcConfig = z
  .object({
    authd: ipcAddress.default('socket://127.0.0.1:14100'),
    queued: ipcAddress.default('socket://127.0.0.1:14101'),
    smtp_out: ipcAddress.default('socket://127.0.0.1:14102'),
    mailboxd: ipcAddress.default('socket://127.0.0.1:14103'),
    /** Where the router listens for `alert` callbacks from queued. */
    router: ipcAddress.default('socket://127.0.0.1:14104'),
    /** Shared secret every IPC connection presents (`hello: SECRET`); required off loopback. */
    secret: z.string().default(''),
    /** Client side: silence allowed while waiting for a reply. */
    timeout_ms: z.number().int().positive().default(30_000),
    /** Server side: idle connections are closed after this. */
    idle_timeout_s: z.number().positive().default(300),
    /** Server side: connections accepted at once, per server. */
    max_connections: z.number().int().positive().default(1000),
  })
  .strict();

export const LogConfig = z
  .object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Log file, relative to data_dir unless absolute; "-" = standard output. `fmail trace` reads it. */
    file: z.string().default('fmail.log'),
  })
  .strict();

export const TlsConfig = z
  .object({
    /** PEM certificate and key; empty = a self-signed pair made in DATA/tls on first start. */
    cert: z.string().default(''),
    key: z.string().default(''),
  })
  .strict();

export const MetricsConfig = z
  .object({
    /** Prometheus endpoint ("" = off). */
    listen: z.string().default('127.0.0.1:9925'),
  })
  .strict();

export const ConfigSchema = z
  .object({
    /** Spool, Maildirs, users and keys live here. FMAIL_DATA overrides the default. */
    data_dir: z.string().default('./data'),
    /** Name used in SMTP greetings, Received headers and bounces. */
    hostname: z.string().default(os.hostname()),
    log: LogConfig.prefault({}),
    ipc: IpcConfig.prefault({}),
    tls: TlsConfig.prefault({}),
    metrics: MetricsConfig.prefault({}),
    authd: AuthdConfig.prefault({}),
    queued: QueuedConfig.prefault({}),
    mailboxd: MailboxdConfig.prefault({}),
    smtpd: SmtpdConfig.prefault({}),
    pop3d: Pop3dConfig.prefault({}),
    smtp_out: SmtpOutConfig.prefault({}),
    router: RouterConfig.prefault({}),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
