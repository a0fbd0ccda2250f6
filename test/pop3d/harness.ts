// A pop3d started on ephemeral ports in front of fake authd/mailboxd, for the protocol tests.

import type { Config } from '../../src/config/schema.js';
import { start } from '../../src/pop3d/index.js';
import { type Logger, silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { type Fakes, startFakes } from './fakes.js';

export const ALICE = 'alice@example.test';
export const ALICE_PW = 'secret pw;%';
export const BOB = 'bob@example.test';
export const BOB_PW = 'bobpw';

export interface Harness {
  config: Config;
  fakes: Fakes;
  pop3d: RunningServer;
  port: number;
  pop3sPort: number;
  dir: string;
  close(): Promise<void>;
}

export function portOf(address: string | undefined): number {
  return Number(address!.split(':').pop());
}

export async function startHarness(pop3d: Partial<Config['pop3d']> = {}, logger?: Logger): Promise<Harness> {
  const tmp = tempDir('fmail-pop3d-');
  const config = testConfig(tmp.dir, { pop3d: { failed_login_delay_ms: 20, ...pop3d } });
  const fakes = await startFakes(config, { [ALICE]: ALICE_PW, [BOB]: BOB_PW });
  const server = await start({ config, logger: logger ?? silentLogger() });
  return {
    config,
    fakes,
    pop3d: server,
    port: portOf(server.addresses.pop3),
    pop3sPort: portOf(server.addresses.pop3s),
    dir: tmp.dir,
    async close() {
      await server.close();
      await fakes.close();
      tmp.cleanup();
    },
  };
}
