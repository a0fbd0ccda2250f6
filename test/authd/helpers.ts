// authd test helpers: a running authd on a temp data folder, and its IPC client.

import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { start } from '../../src/authd/index.js';
import { hashPassword } from '../../src/authd/password.js';
import type { Config } from '../../src/config/schema.js';
import { IpcClient } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

/** Cheap hashes for tests that are not about the cost. */
export const FAST_ARGON = { argon2_memory_kib: 8192, argon2_time_cost: 1 };

export interface Authd {
  dir: string;
  config: Config;
  server: RunningServer;
  client: IpcClient;
  stop(): Promise<void>;
}

/** startAuthd - authd with USERS (address -> password) and ALIASES lines written first. */
export async function startAuthd(
  users: Record<string, string> = {},
  aliases = '',
  authd: Partial<Config['authd']> = {},
): Promise<Authd> {
  const tmp = tempDir('fmail-authd-');
  const config = testConfig(tmp.dir, { authd: { ...FAST_ARGON, ...authd } });
  let text = '';
  for (const [u, p] of Object.entries(users)) text += `${u}:${await hashPassword(p, { memoryKib: 8192, timeCost: 1, parallelism: 1 })}::::::\n`;
  writeFileSync(path.join(tmp.dir, 'users'), text);
  if (aliases) writeFileSync(path.join(tmp.dir, 'aliases'), aliases);
  const server = await start({ config, logger: silentLogger() });
  const client = testClient(config, server.addresses.ipc!);
  return {
    dir: tmp.dir,
    config,
    server,
    client,
    stop: async () => {
      client.close();
      await server.close();
      tmp.cleanup();
    },
  };
}
