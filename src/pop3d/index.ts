// pop3d - the POP3 server (RFC 1939, with CAPA/TOP/UIDL/RESP-CODES RFC 2449, STLS RFC 2595,
// AUTH PLAIN RFC 5034).
//
// SEED: not in the seed; DESIGN.md "pop3d" - POP3 on top of authd and mailboxd.
// IPC ANSWERED: none (pop3d is a client only).
// SERVERS CALLED: authd `auth: USER ; PASSWORD ; CLIENT-IP` for every login; mailboxd `list`
//   once at login (`list: USER ; path` when mailboxd is on this host), `retr` per RETR/TOP
//   when the file cannot be read directly (streamed), `dele` at QUIT - over one mailboxd
//   connection per session, because mailboxd numbers messages per connection.
// STRATEGIES: "snapshot at login" (numbers and sizes fixed for the session); "mark, then
//   UPDATE" (DELE only marks, QUIT deletes); "maildrop lock" (in-process, per user);
//   "direct read" (mailboxd on a Unix socket or loopback names each file; RETR reads it
//   itself, no IPC per message - see maildrop.ts for why that is safe); "read-ahead" (the
//   mailboxd `retr`s of RETRs pipelined behind the current one go out early, in order, so
//   mailboxd's file work overlaps our sending); "gathered replies" (replies collect in one
//   buffer, written once when no command waits - pipelined commands cost one write for the
//   lot - see reply-out.ts); "stuffing in place" (a file is read piece by piece straight into
//   that buffer and dot-stuffed where it lies, with back-pressure between pieces: no copy, no
//   allocation per message, memory does not grow with size).
// CONFIG: [pop3d] host, port (STLS offered), pop3s_port (implicit TLS), allow_plaintext_auth,
//   allow_plaintext_loopback, idle_timeout_s, failed_login_delay_ms, max_login_failures,
//   max_bad_commands, max_line_bytes, max_connections, max_connections_per_ip,
//   connection_limit_exempt; [tls] cert/key.
// SECURITY: passwords only over TLS (STLS or the pop3s port) unless the client is on loopback
//   or allow_plaintext_auth is set; plaintext pipelined after STLS is discarded; failed logins
//   are delayed and end the connection after max_login_failures (authd rate-limits per user
//   and address on top); every connection is bounded in line length, bad commands, the time a
//   command line may take (a deadline, not an idle timer: no slow-loris), idle time,
//   and by caps on connections in total and per address. One session per maildrop at a time
//   (the maildrop lock, "-ERR [IN-USE]"); deletions happen only at QUIT, so a dropped
//   connection loses nothing. RETR streams: memory per session does not grow with the message.
//   Direct read opens only paths mailboxd gave for the logged-in user, each checked to be that
//   Maildir + new/|cur/ + one name (no `/`, `..`), read-only, O_NOFOLLOW, O_NONBLOCK, regular
//   files only.
// DIAGNOSTICS: pop3d.listen, pop3d.login, pop3d.auth_failed, pop3d.in_use, pop3d.retr (debug),
//   pop3d.logout (RETR count and bytes, deleted count), pop3d.refused;
//   gauge fmail_connections{server="pop3d"}.

import net from 'node:net';
import tls from 'node:tls';

import type { Config } from '../config/schema.js';
import { ConnectionLimiter } from '../shared/connection-limiter.js';
import { ipcClient, ipcClientAt } from '../shared/ipc-setup.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { ensureTls } from '../shared/tls.js';
import { MaildropLocks } from './locks.js';
import { Session, type SessionDeps } from './session.js';

/** start - listen on the POP3 and POP3S ports ([pop3d] port / pop3s_port; -1 = off). */
export async function start(ctx: ServerContext): Promise<RunningServer> {
  let config = ctx.config;
  const logger = ctx.logger;
  const material = await ensureTls(config);
  const secureContext = tls.createSecureContext({ cert: material.cert, key: material.key });
  const authd = ipcClient(config, 'authd');
  const sessions = new Set<Session>();
  const limiter = new ConnectionLimiter(() => config.pop3d);
  let closing = false;

  const deps: SessionDeps = {
    cfg: () => config.pop3d,
    secureContext,
    authd,
    // A user with a mailbox host (authd's `auth` answer, `mailhost=` in the users file) is served by that mailboxd.
    openMailboxd: (host?: string) => (host ? ipcClientAt(config, host) : ipcClient(config, 'mailboxd')),
    locks: new MaildropLocks(),
    logger,
  };

  /** admit - the connection caps, total and per client address (the shared limiter). */
  const admit = (sock: net.Socket, isTls: boolean): void => {
    sock.on('error', () => {});
    const verdict = closing ? null : limiter.admit(sock.remoteAddress ?? '');
    if (!verdict || !verdict.ok) {
      const refusal = !verdict ? 'Server shutting down' : verdict.reason.startsWith('too many connections from') ? 'Too many connections from your address' : 'Too many connections, try again later';
      logger.warn({ event: 'pop3d.refused', client: verdict?.ip ?? sock.remoteAddress, reason: refusal }, 'connection refused');
      sock.end(`-ERR [SYS/TEMP] ${refusal}\r\n`);
      setTimeout(() => sock.destroy(), 2000).unref();
      return;
    }
    const session = new Session(sock, isTls, deps);
    sessions.add(session);
    void session.run().finally(() => {
      sessions.delete(session);
      limiter.release(verdict.ip);
    });
  };

  const servers: net.Server[] = [];
  const addresses: Record<string, string> = {};
  const host = config.pop3d.host;
  if (config.pop3d.port >= 0) {
    const srv = net.createServer((sock) => admit(sock, false));
    addresses.pop3 = await listen(srv, host, config.pop3d.port);
    servers.push(srv);
  }
  if (config.pop3d.pop3s_port >= 0) {
    const srv = tls.createServer({ cert: material.cert, key: material.key, handshakeTimeout: 30_000 }, (sock) => admit(sock, true));
    srv.on('tlsClientError', (err) => logger.debug({ event: 'pop3d.tls_error', err: String(err) }, 'TLS handshake failed'));
    addresses.pop3s = await listen(srv, host, config.pop3d.pop3s_port);
    servers.push(srv);
  }
  for (const [role, address] of Object.entries(addresses)) logger.info({ event: 'pop3d.listen', role, address }, 'listening');

  return {
    name: 'pop3d',
    addresses,
    async close(): Promise<void> {
      closing = true;
      const stopped = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      // A session cut short deletes nothing (no UPDATE state), so shutting down is always safe.
      for (const s of sessions) s.abort('Server shutting down');
      const deadline = Date.now() + 5000;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      authd.close();
      await stopped;
    },
    reload(next: Config): void {
      // Limits and policy apply to new decisions at once; ports and TLS need a restart.
      config = next;
    },
  };
}

/** listen - bind and report the address as actually bound (port 0 = ephemeral). */
async function listen(srv: net.Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => {
      srv.off('error', reject);
      resolve();
    });
  });
  const a = srv.address() as net.AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
