// An imapd on ephemeral ports over the in-memory store, for the protocol tests.

import type { Config } from '../../src/config/schema.js';
import { start } from '../../src/imapd/index.js';
import { type Logger, silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { MemoryStore } from './memory-store.js';

export const ALICE = 'alice@example.test';
export const ALICE_PW = 'secret pw;%';
export const BOB = 'bob@example.test';
export const BOB_PW = 'bobpw';
const USERS: Record<string, string> = { [ALICE]: ALICE_PW, [BOB]: BOB_PW };

export interface Harness {
  config: Config;
  store: MemoryStore;
  imapd: RunningServer;
  port: number;
  imapsPort: number;
  close(): Promise<void>;
}

export function portOf(address: string | undefined): number {
  return Number(address!.split(':').pop());
}

export async function startHarness(imapd: Partial<Config['imapd']> = {}, logger?: Logger): Promise<Harness> {
  const tmp = tempDir('fmail-imapd-');
  const config = testConfig(tmp.dir, { imapd: { failed_login_delay_ms: 20, ...imapd } });
  const store = new MemoryStore();
  const server = await start(
    { config, logger: logger ?? silentLogger() },
    {
      store,
      authenticate: async (name, password) => {
        const user = name.toLowerCase();
        return USERS[user] !== undefined && USERS[user] === password ? { ok: true, user } : { ok: false, temporary: false };
      },
    },
  );
  return {
    config,
    store,
    imapd: server,
    port: portOf(server.addresses.imap),
    imapsPort: portOf(server.addresses.imaps),
    async close() {
      await server.close();
      tmp.cleanup();
    },
  };
}
