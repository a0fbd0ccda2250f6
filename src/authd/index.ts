// authd - the Authentication Server.
//
// SEED SECTION
//   "Authentication Server": `verify`, `auth`.
// IPC MESSAGES ANSWERED
//   verify: USER                      ok if USER is a user or an address that delivers to one
//   auth: USER ; PASSWORD [; CLIENT]  ok: USER (canonical name) [; MAILHOST] | error: authentication
//                                     failed | error: too many attempts
//   mailhost: USER                    ok: ADDRESS (the users file's `mailhost=`) | ok (the default
//                                     mailboxd) | error: 5.1.1 unknown user
//   resolve: ADDRESS                  ok: USER1 ; USER2 ...  (the local users it delivers to)
//   domain: DOMAIN                    ok if DOMAIN is local
// SERVERS CALLED
//   none.
// FILES
//   DATA/users (Dovecot passwd-file) and DATA/aliases, edited by `fmail user` / `fmail alias`;
//   re-read when they change (fs.watch, plus a stat before each answer) and on reload().
// CONFIGURATION ([authd])
//   users_file, aliases_file, local_domains, postmaster, recipient_delimiter, max_failures,
//   failure_window_s, argon2_memory_kib, argon2_time_cost, argon2_parallelism.
// SECURITY
//   Names are checked at the boundary (handlers.ts). The same error for an unknown user and a
//   wrong password, and the same work: unknown users are checked against a dummy hash.
//   Comparisons are constant-time. Failures are limited per user and per client address
//   (limiter.ts). Hashing runs off the event loop (libuv pool, bcryptjs async, a crypt worker).
//   Passwords are never logged.

import { randomBytes } from 'node:crypto';
import { type FSWatcher, mkdirSync, watch } from 'node:fs';
import path from 'node:path';

import type { Config } from '../config/schema.js';
import { createIpcServer } from '../shared/ipc-setup.js';
import type { Logger } from '../shared/log.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { useCryptPool } from './crypt-pool.js';
import { Directory, type DirectoryOptions } from './directory.js';
import { argon2Params, usersFiles } from './files.js';
import { type AuthdState, registerHandlers } from './handlers.js';
import { AttemptLimiter } from './limiter.js';
import { hashPassword } from './password.js';

function directoryOptions(config: Config, logger: Logger): DirectoryOptions {
  return { ...usersFiles(config), authd: config.authd, logger };
}

export async function start(ctx: ServerContext): Promise<RunningServer> {
  const { logger } = ctx;
  let config = ctx.config;
  mkdirSync(config.data_dir, { recursive: true });
  const directory = new Directory(directoryOptions(config, logger));
  const limiter = new AttemptLimiter(config.authd.max_failures, config.authd.failure_window_s * 1000);
  const state: AuthdState = {
    directory,
    limiter,
    dummyHash: await hashPassword(randomBytes(18).toString('base64'), argon2Params(config)),
    logger,
  };
  const releaseCrypt = useCryptPool();
  const server = createIpcServer(config, 'authd', logger);
  registerHandlers(server, state);
  const ipc = await server.listen(config.ipc.authd);

  let watchers = watchFiles(config, directory, logger);
  logger.info({ event: 'authd.started', address: ipc, users: directory.userCount }, 'authd ready');

  return {
    name: 'authd',
    addresses: { ipc },
    async close() {
      for (const w of watchers) w.close();
      limiter.close();
      await server.close();
      await releaseCrypt();
    },
    async reload(next: Config) {
      config = next;
      limiter.configure(next.authd.max_failures, next.authd.failure_window_s * 1000);
      state.dummyHash = await hashPassword(randomBytes(18).toString('base64'), argon2Params(next));
      directory.configure(directoryOptions(next, logger));
      for (const w of watchers) w.close();
      watchers = watchFiles(next, directory, logger);
      logger.info({ event: 'authd.reloaded', users: directory.userCount }, 'authd reloaded');
    },
  };
}

// Watches the folders holding the two files (the CLI replaces them by rename, which a watch
// on the file itself would lose); any event for their names triggers a refresh.
function watchFiles(config: Config, directory: Directory, logger: Logger): FSWatcher[] {
  const files = Object.values(usersFiles(config));
  const dirs = new Map<string, Set<string>>();
  for (const f of files) {
    const d = path.dirname(f);
    if (!dirs.has(d)) dirs.set(d, new Set());
    dirs.get(d)!.add(path.basename(f));
  }
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of dirs) {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || names.has(String(name))) directory.recheck();
      });
      w.on('error', (err) => logger.warn({ event: 'authd.watch_failed', dir, err: String(err) }, 'file watch failed; changes are still seen before each answer'));
      watchers.push(w);
    } catch (err) {
      logger.warn({ event: 'authd.watch_failed', dir, err: String(err) }, 'cannot watch; changes are still seen before each answer');
    }
  }
  return watchers;
}
