// imapd - the IMAP server (IMAP4rev1, RFC 3501/9051) with what clients rely on: IDLE, ENABLE,
// ID, NAMESPACE, UIDPLUS, MOVE, UNSELECT, LITERAL+, SASL-IR, LIST-EXTENDED, LIST-STATUS,
// SPECIAL-USE, ESEARCH, CONDSTORE, STATUS=SIZE, APPENDLIMIT; STARTTLS and implicit TLS.
//
// SEED: not in the seed; an IMAP front end on mailboxd, as pop3d is a POP3 one.
// IPC ANSWERED (config [ipc] imapd): `changed: USER ; FOLDER ; UIDNEXT ; HIGHESTMODSEQ ; COUNT`,
//   mailboxd's change notification for a folder some session has selected.
// SERVERS CALLED: authd `auth: USER ; PASSWORD ; CLIENT-IP` for every login; mailboxd
//   `folders`, `folder-*`, `index`, `changes`, `fetch`, `append`, `flags`, `copy`, `move`,
//   `expunge`, `watch`/`unwatch` - over a small pool of shared pipelined connections.
// STRATEGIES: "change catch-up" (a session asks mailboxd what changed since its HIGHESTMODSEQ
//   when told the folder changed, and reports EXISTS/EXPUNGE/FETCH before its next tagged
//   reply, or at once in IDLE); one "watch" per selected (user, folder), renewed every few
//   minutes; "fetch window" (up to 32 messages' bytes requested ahead during FETCH/SEARCH);
//   part trees parsed once per message per session (BODYSTRUCTURE, numbered sections).
// CONFIG: [imapd] host, port (STARTTLS), imaps_port (implicit TLS), allow_plaintext_auth,
//   allow_plaintext_loopback, idle_timeout_s, login_timeout_s, command_timeout_s,
//   failed_login_delay_ms, max_login_failures, max_bad_commands, max_line_bytes,
//   max_literal_bytes, max_message_size, max_connections, max_connections_per_ip,
//   connection_limit_exempt; [ipc] imapd; [tls] cert/key.
// SECURITY: passwords only over TLS (STARTTLS or the imaps port) unless the client is on
//   loopback or allow_plaintext_auth is set (LOGINDISABLED is advertised otherwise);
//   plaintext pipelined after STARTTLS is discarded. Every name is checked to be a folder of
//   the logged-in user (names.ts: no other namespace, no path syntax); the store addresses
//   only that user. Bounded: line length, literal size (refused before any byte is read),
//   pre-login literals (4 KiB), a deadline per line, bad commands, failed logins (delayed,
//   then the connection is closed; authd rate-limits on top), idle time (30 minutes after
//   login, 1 minute before), connections in total and per address.
// DIAGNOSTICS: imapd.listen, imapd.login, imapd.auth_failed, imapd.append, imapd.logout,
//   imapd.refused, imapd.command_failed; gauge fmail_connections{server="imapd"}.

import net from 'node:net';
import tls from 'node:tls';

import { ok, replyText } from '../ipc/index.js';
import { canonicalUser } from '../mail/address.js';
import type { Config } from '../config/schema.js';
import { createIpcServer, ipcClient, ipcClientAt } from '../shared/ipc-setup.js';
import { ConnectionLimiter } from '../shared/connection-limiter.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { ensureTls } from '../shared/tls.js';
import { HostRoutedStore } from './host-store.js';
import { MailboxdStore } from './mailboxd-store.js';
import { Session, type SessionDeps } from './session.js';
import type { MailStore } from './store.js';
import { WatchHub } from './watch-hub.js';

/** Shared mailboxd connections (see mailboxd-store.ts "connection pool"). */
const POOL_SIZE = 4;

/** What tests may put in place of the real authd and mailboxd. */
export interface ImapdOverrides {
  store?: MailStore;
  authenticate?: SessionDeps['authenticate'];
}

/** start - listen on the IMAP and IMAPS ports ([imapd] port / imaps_port; -1 = off). */
export async function start(ctx: ServerContext, overrides: ImapdOverrides = {}): Promise<RunningServer> {
  let config = ctx.config;
  const logger = ctx.logger;
  const material = await ensureTls(config);
  const secureContext = tls.createSecureContext({ cert: material.cert, key: material.key });
  const authd = ipcClient(config, 'authd');
  const pool = Array.from({ length: POOL_SIZE }, () => ipcClient(config, 'mailboxd'));
  const hub = new WatchHub(pool[0]!, logger);
  // Users on other mailbox hosts (authd's `auth` answer): that host's mailboxd, same callback.
  let callbackAddress = '';
  const routed = new HostRoutedStore(new MailboxdStore(pool, hub), (address) => ipcClientAt(config, address), POOL_SIZE, () => callbackAddress, logger);
  const callbacks = createIpcServer(config, 'imapd', logger);
  callbacks.on('changed', {
    params: [2, 5],
    handle: (c) => {
      hub.changed(c.params[0]!, c.params[1]!);
      routed.changed(c.params[0]!, c.params[1]!);
      return ok();
    },
  });
  callbackAddress = await callbacks.listen(config.ipc.imapd);
  hub.start(callbackAddress);

  const sessions = new Set<Session>();
  const limiter = new ConnectionLimiter(() => config.imapd);
  let closing = false;

  const deps: SessionDeps = {
    cfg: () => config.imapd,
    secureContext,
    store: overrides.store ?? routed,
    logger,
    authenticate:
      overrides.authenticate ??
      (async (name, password, clientIp) => {
        const reply = await authd.request('auth', [name, password, clientIp]);
        if (!reply.ok) return { ok: false, temporary: false };
        const user = replyText(reply) || canonicalUser(name);
        routed.noteHost(user, reply.params[1] ?? '');
        return { ok: true, user };
      }),
  };

  /** admit - the connection caps, total and per client address (the shared limiter). */
  const admit = (sock: net.Socket, isTls: boolean): void => {
    sock.on('error', () => {});
    const verdict = closing ? null : limiter.admit(sock.remoteAddress ?? '');
    if (!verdict || !verdict.ok) {
      const refusal = !verdict ? 'Server shutting down' : verdict.reason.startsWith('too many connections from') ? 'Too many connections from your address' : 'Too many connections, try again later';
      logger.warn({ event: 'imapd.refused', client: verdict?.ip ?? sock.remoteAddress, reason: refusal }, 'connection refused');
      sock.end(`* BYE [UNAVAILABLE] ${refusal}\r\n`);
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
  const addresses: Record<string, string> = { ipc: callbackAddress };
  const host = config.imapd.host;
  if (config.imapd.port >= 0) {
    const srv = net.createServer((sock) => admit(sock, false));
    addresses.imap = await listen(srv, host, config.imapd.port);
    servers.push(srv);
  }
  if (config.imapd.imaps_port >= 0) {
    const srv = tls.createServer({ cert: material.cert, key: material.key, handshakeTimeout: 30_000 }, (sock) => admit(sock, true));
    srv.on('tlsClientError', (err) => logger.debug({ event: 'imapd.tls_error', err: String(err) }, 'TLS handshake failed'));
    addresses.imaps = await listen(srv, host, config.imapd.imaps_port);
    servers.push(srv);
  }
  for (const [role, address] of Object.entries(addresses)) logger.info({ event: 'imapd.listen', role, address }, 'listening');

  return {
    name: 'imapd',
    addresses,
    async close(): Promise<void> {
      closing = true;
      const stopped = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of sessions) s.abort('Server shutting down');
      const deadline = Date.now() + 5000;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      hub.close();
      routed.close();
      await callbacks.close();
      authd.close();
      for (const c of pool) c.close();
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

