// smtpd - the SMTP receiver (MX and submission).
//
// SEED: implied by the seed's mail flow (DESIGN.md "smtpd"): the ESMTP server (RFC 5321) that
//   writes each accepted message into a slot of queue `incoming`.
// IPC ANSWERED: none (smtpd is a client only).
// CALLS: authd `auth` (AUTH PLAIN/LOGIN), `domain` + `verify` (RCPT; a local mailbox confirmed is
//   trusted for recipient_cache_ms, AnswerCache), `resolve` (MAIL FROM
//   ownership); queued `slot: incoming`, then `put: incoming ; PATH ; LENGTH` + the bytes (up
//   to 1 MiB: journaled by queued, group commit) or the file written and `push: incoming ;
//   PATH ; synced` (bigger messages). With [smtpd] queue_colocated = false every message goes
//   with `put` (up to 64 MiB) and the slot PATH is only its name: no access to queued's disk.
// LISTENERS: [smtpd] port (MX, STARTTLS offered), submission_port (STARTTLS, AUTH required),
//   submissions_port (implicit TLS, AUTH required); -1 disables one, 0 picks a free port.
// CONFIG: [smtpd] max_message_size, max_recipients, max_line_length, max_command_length,
//   max_connections, max_connections_per_ip, connection_limit_exempt, command_timeout_s,
//   data_timeout_s, min_data_rate, forbid_unauth_pipelining, max_errors, auth_failure_delay_ms, allow_plaintext_auth_loopback,
//   enforce_sender_ownership, bare_newline, greet_pause_ms, recipient_cache_ms, close_grace_s;
//   [tls] cert/key.
// QUEUE FILE: envelope block (src/mail/envelope.ts), then our Received: header
//   (src/mail/received.ts), then the message as received (dot-unstuffed). 250 is sent only
//   after queued answered `ok` to `put` (journal fdatasynced) or `push` (file and directory
//   fsynced); otherwise 451 4.3.0.
// MAIL AUTH: on the MX port (unauthenticated sessions only) every message is checked while DATA
//   streams in (checks.ts, src/mail/auth/inbound.ts): SPF on MAIL FROM and HELO, DKIM, ARC,
//   DMARC, lookups through [dns]. Authentication-Results with our authserv-id is recorded in
//   the envelope (`prepend`) for whoever takes the message out of the queue; incoming A-R
//   headers with our id are dropped; DMARC p=reject failures get 550 5.7.1 after DATA.
//   Settings: [mail_auth] check, authserv_id, dmarc_enforce, spf_reject, quarantine_header.
// SECURITY: never an open relay (non-local RCPT only when authenticated: 554 5.7.1); AUTH only
//   under TLS (503 5.5.1 before); DATA ends only at <CRLF>.<CRLF> (smtp-server's parser), bare
//   LF normalised or refused, so `<LF>.<LF>`-style smuggling cannot split a message; plaintext
//   pipelined behind STARTTLS is discarded by the library; envelope values are percent-encoded
//   and HELO is reduced to host-name characters in Received, so no header can be injected.
//   Pipelining where RFC 2920 forbids it (before the greeting, without EHLO, past EHLO/DATA/
//   NOOP..., message data before 354) gets 554 5.5.0 and a hang-up (forbid_unauth_pipelining).
//   Every per-connection resource is bounded (see CONFIG), the time too: a command line has
//   command_timeout_s from our last reply, DATA data_timeout_s plus 1/min_data_rate s a byte
//   (deadlines, not idle timers: no slow-loris); every accepted RCPT counts (max_recipients);
//   the per-IP caps are the shared ConnectionLimiter (src/shared/connection-limiter.ts).
// DIAGNOSTICS: log events smtpd.connect, smtpd.auth, smtpd.reject (reason), smtpd.queued (qid,
//   from, nrcpt, size, client), smtpd.checks (qid, spf, spf_helo, dkim, dmarc, arc, action);
//   metrics fmail_messages_received_total, ..._rejected_total, fmail_connections{server="smtpd"},
//   fmail_mail_auth_results_total{check,result}, fmail_mail_auth_check_seconds.

import type { AddressInfo } from 'node:net';

import type { SMTPServerOptions } from 'smtp-server';

import { isLoopbackIp } from '../shared/client-ip.js';
import { ConnectionLimiter } from '../shared/connection-limiter.js';
import { AnswerCache } from '../ipc/answer-cache.js';
import { ipcClient } from '../shared/ipc-setup.js';
import { queueIsRemote } from '../mail/spool.js';
import { messagesRejected } from '../shared/metrics.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { ensureTls } from '../shared/tls.js';
import { FancySmtpServer, type ProtocolLimits } from './protocol.js';
import { type Role, sessionHandlers } from './session.js';

interface Listener {
  role: Role;
  port: number;
  secure: boolean;
}

/** Connections to queued that carry `put` (messages handed over at once, at most). */
const PUT_CONNECTIONS = 32;

/** start - bind the configured listeners; resolves once all are listening. */
export async function start(ctx: ServerContext): Promise<RunningServer> {
  const { config, logger } = ctx;
  const cfg = config.smtpd;
  const tls = await ensureTls(config);
  const authd = ipcClient(config, 'authd');
  const queued = ipcClient(config, 'queued');
  // Not co-located with queued: every message goes with `put` (the slot PATH only names it).
  if (!config.smtpd.queue_colocated) queueIsRemote(queued);
  const limits = new ConnectionLimiter(() => cfg);
  // queued answers one `put` at a time per connection: sessions share a few, so puts in flight
  // reach its journal together and share one flush.
  const putClients = Array.from({ length: PUT_CONNECTIONS }, () => ipcClient(config, 'queued'));
  let nextPut = 0;
  const putVia = () => putClients[nextPut++ % putClients.length]!;
  // RCPT's two questions, an ok answer reused for recipient_cache_ms (bursts to one mailbox).
  const answers = new AnswerCache(authd, cfg.recipient_cache_ms);
  const deps = { config, logger, authd, answers, queued, putVia, limits };

  const protocolLimits: ProtocolLimits = {
    commandTimeoutMs: cfg.command_timeout_s * 1000,
    dataTimeoutMs: cfg.data_timeout_s * 1000,
    minDataRate: cfg.min_data_rate,
    maxRecipients: cfg.max_recipients,
    maxErrors: cfg.max_errors,
    greetPauseMs: cfg.greet_pause_ms,
    forbidUnauthPipelining: cfg.forbid_unauth_pipelining,
    onPipeliningViolation: (ip, command, where) => {
      messagesRejected.inc({ reason: 'pipelining' });
      logger.info({ event: 'smtpd.reject', reason: 'pipelining', client: ip, command, where }, 'rejected: improper command pipelining');
    },
    onDeadline: (ip, phase) => {
      messagesRejected.inc({ reason: 'timeout' });
      logger.info({ event: 'smtpd.reject', reason: 'timeout', client: ip, phase }, 'rejected: timeout exceeded');
    },
    plaintextAuthAllowed: (ip) => cfg.allow_plaintext_auth_loopback && isLoopbackIp(ip),
    onTooManyErrors: (ip) => logger.info({ event: 'smtpd.reject', reason: 'too_many_errors', client: ip }, 'rejected: too many errors'),
  };

  const listeners: Listener[] = (
    [
      { role: 'smtp', port: cfg.port, secure: false },
      { role: 'submission', port: cfg.submission_port, secure: false },
      { role: 'submissions', port: cfg.submissions_port, secure: true },
    ] as Listener[]
  ).filter((l) => l.port >= 0);

  const servers: FancySmtpServer[] = [];
  const addresses: Record<string, string> = {};
  try {
    for (const l of listeners) {
      const options: SMTPServerOptions = {
        ...sessionHandlers(l.role, deps),
        name: config.hostname,
        secure: l.secure,
        key: tls.key,
        cert: tls.cert,
        size: cfg.max_message_size,
        rejectOversized: true,
        maxRecipients: cfg.max_recipients,
        maxCommandLength: cfg.max_command_length,
        maxClients: cfg.max_connections,
        socketTimeout: cfg.command_timeout_s * 1000,
        closeTimeout: cfg.close_grace_s * 1000,
        authMethods: ['PLAIN', 'LOGIN'],
        // Every AUTH/TLS rule is ours (protocol.ts, session.ts): the library must not add its own.
        authOptional: true,
        allowInsecureAuth: true,
        disableReverseLookup: true,
        hideENHANCEDSTATUSCODES: false,
        hideDSN: true,
        hideREQUIRETLS: true,
        logger: false,
      };
      const server = new FancySmtpServer(options, protocolLimits);
      server.on('error', (err: Error) => logger.debug({ event: 'smtpd.conn_error', err: err.message }, 'connection error'));
      servers.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(l.port, cfg.host, () => {
          server.server.off('error', reject);
          resolve((server.server.address() as AddressInfo).port);
        });
      });
      addresses[l.role] = `${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${port}`;
      logger.info({ event: 'smtpd.listen', role: l.role, address: addresses[l.role] }, 'listening');
    }
  } catch (err) {
    await closeAll(servers, 0);
    authd.close();
    queued.close();
    for (const c of putClients) c.close();
    throw err;
  }

  return {
    name: 'smtpd',
    addresses,
    async close() {
      await closeAll(servers, cfg.close_grace_s * 1000);
      authd.close();
      queued.close();
      for (const c of putClients) c.close();
    },
  };
}

/**
 * closeAll - graceful stop: no new connections; idle sessions get 421 now; sessions in a
 * transaction may finish it (new commands get 421) until the grace period ends.
 */
async function closeAll(servers: FancySmtpServer[], graceMs: number): Promise<void> {
  const closed = servers.map(
    (s) =>
      new Promise<void>((resolve) => {
        if (!s.server.listening) return resolve();
        s.close(() => resolve());
      }),
  );
  for (const s of servers) {
    for (const c of [...s.connections]) {
      if (graceMs === 0 || !FancySmtpServer.isBusy(c)) c.send(421, '4.3.2 Service shutting down', false);
    }
  }
  // Bounded: the library cuts remaining sessions at closeTimeout; this is the backstop.
  await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, graceMs + 6000).unref())]);
}
