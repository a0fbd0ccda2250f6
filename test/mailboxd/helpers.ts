// Test helpers for mailboxd: a stand-in authd answering `verify` from a fixed set of users, and
// a running mailboxd with a client, all on Unix sockets in a temp folder.

import { IpcClient, IpcServer, error, ok } from '../../src/ipc/index.js';
import type { Config } from '../../src/config/schema.js';
import { start } from '../../src/mailboxd/index.js';
import { silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

/** fakeAuthd - `verify: USER` and `resolve: USER` (-> USER) for the given users (lower case). */
export async function fakeAuthd(config: Config, users: string[], opts: { verifyOnly?: boolean } = {}): Promise<IpcServer> {
  const known = new Set(users.map((u) => u.toLowerCase()));
  const server = new IpcServer({ serverName: 'authd', version: 'test', logger: silentLogger() });
  server.on('verify', { params: 1, handle: (ctx) => (known.has(ctx.params[0]!.toLowerCase()) ? ok() : error()) });
  if (!opts.verifyOnly) server.on('resolve', { params: 1, handle: (ctx) => (known.has(ctx.params[0]!.toLowerCase()) ? ok(ctx.params[0]!.toLowerCase()) : error('no such user')) });
  await server.listen(config.ipc.authd);
  return server;
}

export interface Harness {
  dir: string;
  config: Config;
  mailboxd: RunningServer;
  authd: IpcServer;
  client(): IpcClient;
  close(): Promise<void>;
}

/** harness - authd stand-in + mailboxd; `client()` makes clients closed by `close()`. */
export async function harness(users: string[], overrides: Parameters<typeof testConfig>[1] = {}): Promise<Harness> {
  const tmp = tempDir('fmail-mbox-');
  const config = testConfig(tmp.dir, overrides);
  const authd = await fakeAuthd(config, users);
  const mailboxd = await start({ config, logger: silentLogger() });
  const clients: IpcClient[] = [];
  const self: Harness = {
    dir: tmp.dir,
    config,
    mailboxd,
    authd,
    client: () => {
      const c = testClient(config, mailboxd.addresses.ipc!, { timeoutMs: 60_000 });
      clients.push(c);
      return c;
    },
    close: async () => {
      for (const c of clients) c.close();
      await mailboxd.close();
      await self.authd.close();
      tmp.cleanup();
    },
  };
  return self;
}
