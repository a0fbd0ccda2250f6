// mailboxd - the Mailbox Server: one Maildir per user.
//
// SEED: "Mailbox Server" (list, mailinfo, store); DESIGN.md "mailboxd" (retr, dele, UID).
//
// ANSWERS (IPC, on ipc.mailboxd):
//   store: TO ; RECIPIENT ; LENGTH  go-ahead `ok`, LENGTH raw bytes, `ok` once durable in new/
//   list: USER                      `ok: COUNT`, `mailinfo: N ; SIZE ; UID` x COUNT, `ok`
//   retr: USER ; N                  `ok: SIZE` + SIZE raw bytes (streamed from the file)
//   dele: USER ; N                  `ok`, or `error` when N is unknown or already deleted
//
// CALLS: authd `resolve: USER` (USER must be a mailbox user itself, not an alias), or
//   `verify: USER` when that authd has no `resolve`.
//
// STORAGE: DATA/<maildirs>/<user>/{tmp,new,cur}, names `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>`
// as Dovecot writes them, so Dovecot, mutt and other Maildir tools read our mailboxes and we
// read theirs. Delivery: tmp/, fsync, rename into new/, fsync new/ ("group fsync": concurrent
// deliveries share directory fsyncs), then `ok`. Files are left in new/ (a reader such as
// Dovecot may move them to cur/; list/retr/dele find them in either).
//
// CONFIG [mailboxd]: maildirs, max_message_size, quota_bytes (reloadable: the last two).
//
// SECURITY: user names are checked at one boundary (users.ts): no `/`, `..`, NUL, control
// characters, and authd must know the user, before any path is built; the folder is checked to
// lie inside the mail root. RECIPIENT may not hold line breaks (it becomes a header). Every
// limit is checked before the go-ahead, so a refused store sends no data. A client that goes
// away mid-data leaves nothing in new/ (its tmp/ file is removed).

import { dataPath } from '../config/load.js';
import { ipcSecret } from '../shared/ipc-secret.js';
import { createIpcServer, ipcClient } from '../shared/ipc-setup.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { MailboxService } from './handlers.js';
import { maildirHost } from './maildir-name.js';

/** start - serve the mailbox messages on ipc.mailboxd. */
export async function start(ctx: ServerContext): Promise<RunningServer> {
  const { config, logger } = ctx;
  const root = dataPath(config, config.mailboxd.maildirs);
  const authd = ipcClient(config, 'authd');
  const service = new MailboxService(root, maildirHost(config.hostname), config.mailboxd, authd, logger, ipcSecret(config, { create: true }));
  const server = createIpcServer(config, 'mailboxd', logger);
  for (const [name, spec] of Object.entries(service.handlers())) server.on(name, spec);
  const ipc = await server.listen(config.ipc.mailboxd);
  logger.info({ event: 'mailboxd.started', maildirs: root }, 'mailbox server ready');
  return {
    name: 'mailboxd',
    addresses: { ipc },
    close: async () => {
      await server.close();
      service.close();
      authd.close();
    },
    reload: (next) => service.setLimits(next.mailboxd),
  };
}
