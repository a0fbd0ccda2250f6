// imapd with the real authd and mailboxd (startSystem), for the real-client tests: users in a
// passwd-file, mail delivered through mailboxd's IPC `store`, IMAP on an ephemeral port.

import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { type System, startSystem } from '../../src/cli/start.js';
import type { Config } from '../../src/config/schema.js';
import type { IpcClient } from '../../src/ipc/index.js';
import { ipcClient } from '../../src/shared/ipc-setup.js';
import { silentLogger } from '../../src/shared/log.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { portOf } from './harness.js';

export const ALICE = 'alice@example.test';
export const ALICE_PW = 'secret pw;%';
export const BOB = 'bob@example.test';
export const BOB_PW = 'bobpw';

export interface Stack {
  dir: string;
  config: Config;
  system: System;
  port: number;
  imapsPort: number;
  deliver(user: string, body: Buffer | string): Promise<void>;
  close(): Promise<void>;
}

/** startStack - IMAPD settings over the test defaults; TLS: certificate and key files (else self-signed). */
export async function startStack(imapd: Partial<Config['imapd']> = {}, tls?: Config['tls']): Promise<Stack> {
  const tmp = tempDir('fmail-imapd-stack-');
  writeFileSync(path.join(tmp.dir, 'users'), `${ALICE}:{PLAIN}${ALICE_PW}::::::\n${BOB}:{PLAIN}${BOB_PW}::::::\n`);
  const config = testConfig(tmp.dir, { imapd: { failed_login_delay_ms: 20, ...imapd }, ...(tls ? { tls } : {}) });
  const system = await startSystem(config, silentLogger(), ['authd', 'mailboxd', 'imapd']);
  const imap = system.servers.find((s) => s.name === 'imapd')!;
  const mailboxd = ipcClient(config, 'mailboxd');
  return {
    dir: tmp.dir,
    config,
    system,
    port: portOf(imap.addresses.imap),
    imapsPort: portOf(imap.addresses.imaps),
    async deliver(user, body) {
      const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
      const r = await mailboxd.store('store', [user, user, String(data.length)], data);
      if (!r.ok) throw new Error(`store: ${r.params.join(' ')}`);
    },
    async close() {
      mailboxd.close();
      await system.stop();
      tmp.cleanup();
    },
  };
}
