// mailboxd - the Mailbox Server: one Maildir per user, Maildir++ folders, a UID index per folder.
//
// SEED: "Mailbox Server" (list, mailinfo, store); DESIGN.md "mailboxd" (retr, dele, UID);
// README "Extensions" (folders, UIDs, flags, MODSEQ, watches, the exactly-once store).
//
// ANSWERS (IPC, on ipc.mailboxd):
//   store: TO ; RECIPIENT ; LENGTH [; QID]  go-ahead, raw bytes, `ok` once durable (`ok: duplicate`:
//                                   that QID was stored for TO/RECIPIENT already)
//   list: USER [; path]             `ok: COUNT`, `mailinfo: N ; SIZE ; UID [; new/NAME]` x COUNT, `ok`
//   retr: USER ; N / dele: USER ; N INBOX by the numbers of this connection's list
//   folders, folder-create/-delete/-rename/-subscribe/-status, index, changes, fetch, path,
//   append, flags, copy, move, expunge, watch, unwatch  (folder-handlers.ts)
//
// CALLS: authd `resolve: USER` (or `verify`; for `store` an ok answer is reused 100 ms, as the
//   router asked the same a moment before); watchers' callbacks (`changed: ...`).
//
// STORAGE: DATA/<maildirs>/<user>/{tmp,new,cur}, folders `.NAME/` (mUTF-7) with the same, names
// `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>[,D=<key>][:2,<flags>]` as Dovecot writes them, and
// per folder `dovecot-uidlist` and `dovecot-keywords` in Dovecot's formats, so Dovecot, mutt
// and other Maildir tools share our mailboxes (and Dovecot shows our UIDs).
// Delivery: tmp/, fsync, rename into new/, "group fsync" of new/, then `ok`. A message up to
// 64 KiB is gathered first and written and fdatasynced in one I/O job; its rename joins new/'s
// group fsync job, which waits up to 20 ms for concurrent stores (nobody but the router waits on
// a store). A bigger one streams to tmp/. "Deferred numbering":
// the UIDs of what was stored follow within 100 ms (at once when a reader asks), for all those
// stores in one uidlist append + fdatasync under its lock; no UID is shown before its line is
// on disk. IMAP `append` numbers before answering. The index lives in memory (folder.ts): a
// "stat check" of new/, cur/ and the uidlist before answering picks up changes made behind
// our back.
// Reads: small files in one synchronous read from the page cache; big ones streamed.
//
// CONFIG [mailboxd]: maildirs, max_message_size, quota_bytes (reloadable: the last two).
//
// SECURITY: user names are checked at one boundary (users.ts): no `/`, `..`, NUL, control
// characters, and authd must know the user, before any path is built; the folder is checked to
// lie inside the mail root. Folder names are checked in folder-name.ts (no `/`, no `..`, no
// leading dot) before they become `.NAME` in that Maildir; file names come from readdir and
// hold no `/`. RECIPIENT may not hold line breaks (it becomes a header). Every limit is checked
// before the go-ahead, so a refused store sends no data. A client that goes away mid-data
// leaves nothing in new/ (its tmp/ file is removed). Watch callbacks get the IPC secret (as
// queued's alerts): a callback address is trusted like any IPC peer of this deployment.

import { dataPath } from '../config/load.js';
import { ipcSecret } from '../shared/ipc-secret.js';
import { createIpcServer, ipcClient } from '../shared/ipc-setup.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { MailboxService } from './handlers.js';
import { maildirHost } from './maildir-name.js';
import { warmIo } from '../shared/io-pool.js';

/** start - serve the mailbox messages on ipc.mailboxd. */
export async function start(ctx: ServerContext): Promise<RunningServer> {
  warmIo();
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
