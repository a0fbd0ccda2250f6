// testConfig - a configuration for in-process tests: data in a temp folder, IPC on Unix sockets
// inside it, every network port ephemeral on 127.0.0.1, logs silent, metrics off.

import path from 'node:path';

import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { IpcClient, type IpcClientOptions } from '../../src/ipc/index.js';
import { ipcSecret } from '../../src/shared/ipc-secret.js';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function testConfig(dir: string, overrides: DeepPartial<Config> = {}): Config {
  const sock = (name: string): string => `unix://${path.join(dir, `${name}.sock`)}`;
  const base = {
    data_dir: dir,
    hostname: 'mx.fancymail.test',
    log: { level: process.env.FMAIL_TEST_LOG ?? 'silent' },
    ipc: { authd: sock('authd'), queued: sock('queued'), smtp_out: sock('smtp-out'), mailboxd: sock('mailboxd'), router: sock('router'), imapd: sock('imapd'), timeout_ms: 10_000 },
    metrics: { listen: '' },
    smtpd: { host: '127.0.0.1', port: 0, submission_port: 0, submissions_port: 0 },
    pop3d: { host: '127.0.0.1', port: 0, pop3s_port: 0 },
    imapd: { host: '127.0.0.1', port: 0, imaps_port: 0 },
    // No lookups to the machine's resolver from tests: mail-auth tests turn checks on with
    // [dns] servers pointing at their own loopback DNS server (test/helpers/dns-server.ts).
    mail_auth: { check: false },
  };
  return parseConfig(merge(base, overrides as Record<string, unknown>));
}

/**
 * testClient - an IpcClient to ADDRESS presenting CONFIG's IPC secret (DATA/ipc.secret, made by
 * the first server of that data folder), as every FancyMail client does.
 */
export function testClient(config: Config, address: string, opts: IpcClientOptions = {}): IpcClient {
  return new IpcClient(address, { ...opts, secret: ipcSecret(config, { create: true }) });
}
