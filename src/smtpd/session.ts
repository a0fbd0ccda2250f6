// session - the policy of one listener, as smtp-server callbacks: who may connect, AUTH against
// authd, who may send as whom, which recipients are accepted, and what happens to DATA.
//
// Roles: `smtp` (MX: anyone may send to local users; relaying needs AUTH), `submission` and
// `submissions` (AUTH required before MAIL). Every refusal is logged as smtpd.reject with its
// reason and counted in fmail_messages_rejected_total{reason}.

import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';

import type { Config } from '../config/schema.js';
import type { AnswerCache } from '../ipc/answer-cache.js';
import type { IpcClient } from '../ipc/index.js';
import { canonicalUser, domainOf, normalizeAddress } from '../mail/address.js';
import { formatEnvelope } from '../mail/envelope.js';
import { formatReceived } from '../mail/received.js';
import type { ConnectionLimiter } from '../shared/connection-limiter.js';
import type { Logger } from '../shared/log.js';
import { connections, messagesReceived, messagesRejected } from '../shared/metrics.js';
import { startChecks } from './checks.js';
import { receiveData } from './spool-writer.js';

export type Role = 'smtp' | 'submission' | 'submissions';

export interface SessionDeps {
  config: Config;
  logger: Logger;
  authd: IpcClient;
  queued: IpcClient;
  /** A connection to queued for the next message's `put` (one put at a time per connection). */
  putVia(): IpcClient;
  limits: ConnectionLimiter;
  /** authd for RCPT's `domain` and `verify`: an ok answer reused for recipient_cache_ms. */
  answers: AnswerCache;
}

type Handlers = Pick<SMTPServerOptions, 'onConnect' | 'onAuth' | 'onMailFrom' | 'onRcptTo' | 'onData' | 'onClose'>;

/** smtpError - an error whose text (starting with its enhanced code) becomes the reply. */
function smtpError(code: number, text: string): Error {
  const err = new Error(text) as Error & { responseCode: number };
  err.responseCode = code;
  return err;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** sessionHandlers - the callbacks for one listener. */
export function sessionHandlers(role: Role, deps: SessionDeps): Handlers {
  const { config, logger, authd, answers, queued, limits, putVia } = deps;
  const cfg = config.smtpd;
  const counted = new Set<string>();
  const authRequired = role !== 'smtp';

  const reject = (session: SMTPServerSession, reason: string, fields: Record<string, unknown> = {}): void => {
    messagesRejected.inc({ reason });
    logger.info({ event: 'smtpd.reject', reason, client: session.remoteAddress, port: role, ...fields }, `rejected: ${reason}`);
  };

  return {
    onConnect(session, cb) {
      const verdict = limits.admit(session.remoteAddress);
      if (!verdict.ok) {
        reject(session, 'connection_limit', { detail: verdict.reason });
        return cb(smtpError(421, `4.7.0 Error: ${verdict.reason}, try again later`));
      }
      counted.add(session.id);
      connections.inc({ server: 'smtpd' });
      logger.info({ event: 'smtpd.connect', client: session.remoteAddress, port: role, sid: session.id }, 'connection');
      cb();
    },

    onClose(session) {
      if (!counted.delete(session.id)) return;
      limits.release(session.remoteAddress);
      connections.dec({ server: 'smtpd' });
    },

    onAuth(auth: SMTPServerAuthentication, session, cb: (err: Error | null | undefined, res?: SMTPServerAuthenticationResponse) => void) {
      const username = auth.username ?? '';
      authd.request('auth', [username, auth.password ?? '', session.remoteAddress]).then(
        async (r) => {
          if (r.ok) {
            logger.info({ event: 'smtpd.auth', client: session.remoteAddress, user: r.params[0] || username, method: auth.method }, 'authenticated');
            return cb(null, { user: canonicalUser(r.params[0] || username) });
          }
          reject(session, 'auth_failed', { user: username, method: auth.method });
          await sleep(cfg.auth_failure_delay_ms);
          cb(null, { responseCode: 535, message: '5.7.8 Error: authentication failed: authentication failure' } as SMTPServerAuthenticationResponse);
        },
        (err: unknown) => {
          logger.warn({ event: 'smtpd.authd_unavailable', err: String(err) }, 'authd unreachable');
          cb(smtpError(454, '4.7.0 Temporary authentication failure'));
        },
      );
    },

    onMailFrom(address: SMTPServerAddress, session, cb) {
      const from = address.address ? normalizeAddress(address.address) : '';
      if (authRequired && !session.user) {
        reject(session, 'auth_required', { from });
        return cb(smtpError(530, '5.7.0 Authentication required'));
      }
      if (!session.user || !cfg.enforce_sender_ownership || from === '') return cb();
      const user = String(session.user);
      if (canonicalUser(from) === user) return cb();
      authd.request('resolve', [from]).then(
        (r) => {
          if (r.ok && r.params.some((u) => canonicalUser(u) === user)) return cb();
          reject(session, 'sender_not_owned', { from, user });
          cb(smtpError(553, `5.7.1 <${from}>: Sender address rejected: not owned by user ${user}`));
        },
        () => cb(smtpError(451, `4.3.0 <${from}>: Temporary lookup failure`)),
      );
    },

    onRcptTo(address: SMTPServerAddress, session, cb) {
      const rcpt = normalizeAddress(address.address);
      checkRecipient(rcpt, !!session.user, answers).then(
        (verdict) => {
          if (verdict === 'ok') return cb();
          if (verdict === 'unknown') {
            reject(session, 'unknown_user', { rcpt });
            return cb(smtpError(550, `5.1.1 <${rcpt}>: Recipient address rejected: User unknown`));
          }
          reject(session, 'relay_denied', { rcpt });
          cb(smtpError(554, `5.7.1 <${rcpt}>: Relay access denied`));
        },
        (err: unknown) => {
          logger.warn({ event: 'smtpd.authd_unavailable', err: String(err) }, 'authd unreachable');
          cb(smtpError(451, `4.3.0 <${rcpt}>: Temporary lookup failure`));
        },
      );
    },

    onData(stream: SMTPServerDataStream, session, cb) {
      const env = session.envelope;
      const from = env.mailFrom ? normalizeAddress(env.mailFrom.address) : '';
      const rcpt = env.rcptTo.map((r) => normalizeAddress(r.address));
      const helo = session.hostNameAppearsAs || '';
      const user = session.user ? String(session.user) : '';
      const protocol = (session.openingCommand === 'EHLO' ? 'ESMTP' : 'SMTP') + (session.secure ? 'S' : '') + (user ? 'A' : '');
      const now = new Date();
      const head = (qid: string): Buffer =>
        Buffer.concat([
          formatEnvelope({ qid, from, rcpt, client: session.remoteAddress, helo, auth: user, time: now.toISOString() }),
          Buffer.from(formatReceived({ helo, ip: session.remoteAddress, hostname: config.hostname, protocol, qid, rcpt, date: now }), 'utf8'),
        ]);
      // Mail from the MX port is checked (SPF/DKIM/DMARC/ARC); authenticated mail is not.
      const checks = role === 'smtp' && !user && config.mail_auth.check ? startChecks(config, logger, stream, { ip: session.remoteAddress, helo, mailFrom: from }) : null;
      const spool = { queued, putVia: putVia(), head, bareNewline: cfg.bare_newline, maxLineLength: cfg.max_line_length };
      receiveData(stream, checks ? { ...spool, head: checks.head(head), filter: checks.filter, seal: () => checks.seal() } : spool).then((out) => {
        switch (out.kind) {
          case 'refused':
            reject(session, 'mail_auth', { from, detail: out.text, ...checks?.fields() });
            return cb(smtpError(out.code, out.text));
          case 'queued':
            messagesReceived.inc({ port: role });
            logger.info({ event: 'smtpd.queued', qid: out.qid, from, nrcpt: rcpt.length, size: out.size, client: session.remoteAddress, port: role, auth: user || undefined }, 'queued');
            return cb(null, `2.0.0 Ok: queued as ${out.qid}`);
          case 'too-big':
            reject(session, 'size', { from, size: stream.byteLength });
            return cb(smtpError(552, `5.3.4 Error: message exceeds fixed maximum message size ${cfg.max_message_size}`));
          case 'bare-lf':
            reject(session, 'bare_lf', { from });
            return cb(smtpError(550, '5.5.2 Error: bare <LF> received'));
          case 'line-too-long':
            reject(session, 'line_too_long', { from });
            return cb(smtpError(552, `5.3.4 Error: message line longer than ${cfg.max_line_length} bytes`));
          case 'failed':
            reject(session, 'queue_error', { from, detail: out.error });
            logger.error({ event: 'smtpd.queue_error', err: out.error, status: out.status, client: session.remoteAddress }, 'queue file write error');
            // Decided by the status code, as Postfix: a full spool is 452 4.3.1, the rest 451.
            if (out.status === '4.3.1') return cb(smtpError(452, '4.3.1 Error: insufficient system storage'));
            return cb(smtpError(451, '4.3.0 Error: queue file write error'));
        }
      });
    },
  };
}

/** checkRecipient - local and known, local and unknown, or remote (allowed only when authenticated). */
async function checkRecipient(rcpt: string, authenticated: boolean, authd: AnswerCache): Promise<'ok' | 'unknown' | 'relay'> {
  const domain = domainOf(rcpt);
  // Both questions at once (one round trip to authd, not two); a bare `postmaster` (RFC 5321
  // 4.1.1.3) is always ours.
  const [local, known] = await Promise.all([domain === '' ? true : authd.request('domain', [domain]).then((r) => r.ok), authd.request('verify', [rcpt]).then((r) => r.ok)]);
  if (local) return known ? 'ok' : 'unknown';
  return authenticated ? 'ok' : 'relay';
}
