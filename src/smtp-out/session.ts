// Session - one SMTP client connection (nodemailer's SMTPConnection) with promises around it:
// connect (opportunistic STARTTLS, certificate not verified, as Postfix's `may` level; a TLS
// handshake that fails is retried in plain text), optional AUTH, transactions, QUIT.
// With AUTH (or verified or required TLS) there is no plain-text retry: TLS is required and
// the credentials are written only to an encrypted session ("credentials never in clear").

import type { Readable } from 'node:stream';

import SMTPConnection from 'nodemailer/lib/smtp-connection';

import type { Host } from './nexthop.js';

export interface SessionOptions {
  hostname: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  auth?: { user: string; pass: string };
  /** TLS (MTA-STS, relay): the name the certificate must carry, the CAs; verify or required = no session without TLS. */
  tls?: { servername: string; ca: string[]; verify: boolean; required?: boolean };
}

export interface TransactionResult {
  /** Recipients the server took (after DATA). */
  accepted: string[];
  /** Per refused recipient: its reply code and text. */
  rejected: Map<string, { code: number; response: string }>;
  response: string;
}

/** SmtpError - a whole-transaction failure with the server's reply code (0 = no reply: network). */
export class SmtpError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly response: string,
    /** nodemailer's error kind: ECONNECTION, ETIMEDOUT, ETLS, EAUTH, ... */
    readonly kind = '',
  ) {
    super(message);
  }
}

export class Session {
  private broken = false;
  private dirty = false;
  messages = 0;

  private constructor(
    private readonly conn: SMTPConnection,
    readonly host: Host,
  ) {
    conn.on('error', () => (this.broken = true));
    conn.on('end', () => (this.broken = true));
  }

  /** open - connect, EHLO, STARTTLS when offered, AUTH when configured. */
  static async open(host: Host, opts: SessionOptions): Promise<Session> {
    const tlsRequired = !!opts.auth || !!opts.tls?.verify || !!opts.tls?.required;
    let conn: SMTPConnection;
    try {
      conn = await connect(host, opts, false, tlsRequired);
    } catch (err) {
      if (opts.auth && err instanceof SmtpError) throw new SmtpError(`TLS is required before AUTH (relay_user is set): ${err.message}`, err.code, err.response, err.kind);
      if (!(err instanceof SmtpError) || err.kind !== 'ETLS' || tlsRequired) throw err;
      conn = await connect(host, opts, true, false);
    }
    const session = new Session(conn, host);
    if (opts.auth && !conn.secure) {
      // Belt and braces: whatever the library did, the password is never written in clear.
      session.close();
      throw new SmtpError('TLS is required before AUTH (relay_user is set): the session is not encrypted', 0, '', 'ETLS');
    }
    if (opts.auth) {
      try {
        await new Promise<void>((resolve, reject) =>
          conn.login({ user: opts.auth!.user, pass: opts.auth!.pass }, (err) => (err ? reject(toSmtpError(err)) : resolve())),
        );
      } catch (err) {
        session.close();
        throw err;
      }
    }
    return session;
  }

  get usable(): boolean {
    return !this.broken && !(this.conn as unknown as { _destroyed?: boolean })._destroyed;
  }

  /** tlsVerified - TLS is on and its certificate checked out against opts.tls (chain and name). */
  get tlsVerified(): { ok: boolean; error: string } {
    const s = (this.conn as unknown as { _socket?: { authorized?: boolean; authorizationError?: Error | string } })._socket;
    if (!this.conn.secure) return { ok: false, error: 'no TLS' };
    return { ok: !!s?.authorized, error: s?.authorized ? '' : String(s?.authorizationError ?? 'certificate not verified') };
  }

  get secure(): boolean {
    return this.conn.secure;
  }

  /** supports - an EHLO keyword the server announced (SMTPUTF8, 8BITMIME, ...). */
  supports(ext: string): boolean {
    return ((this.conn as unknown as { _supportedExtensions?: string[] })._supportedExtensions ?? []).includes(ext);
  }

  /** maxSize - the server's SIZE limit, or 0 when none was announced. */
  get maxSize(): number {
    return Number((this.conn as unknown as { _maxAllowedSize?: number })._maxAllowedSize) || 0;
  }

  /** send - one transaction: MAIL FROM, RCPT TO each, DATA with the streamed message. */
  async send(from: string, to: string[], message: Readable, size: number, eightBit: boolean): Promise<TransactionResult> {
    if (this.dirty) await this.reset();
    this.messages++;
    return new Promise<TransactionResult>((resolve, reject) => {
      this.conn.send({ from, to, size, use8BitMime: eightBit } as SMTPConnection.Envelope, message, (err, info) => {
        if (err) {
          this.dirty = true;
          const e = err as SMTPConnection.SMTPError & { rejectedErrors?: Array<{ recipient?: string; responseCode?: number; response?: string }> };
          const rejected = new Map<string, { code: number; response: string }>();
          for (const r of e.rejectedErrors ?? []) if (r.recipient) rejected.set(r.recipient, { code: r.responseCode ?? 0, response: r.response ?? '' });
          if (rejected.size === to.length && e.command === 'RCPT TO') {
            resolve({ accepted: [], rejected, response: e.response ?? '' });
            return;
          }
          if (!e.responseCode) this.broken = true;
          reject(toSmtpError(err));
          return;
        }
        const rejected = new Map<string, { code: number; response: string }>();
        for (const r of (info.rejectedErrors ?? []) as Array<{ recipient?: string; responseCode?: number; response?: string }>) {
          if (r.recipient) rejected.set(r.recipient, { code: r.responseCode ?? 0, response: r.response ?? '' });
        }
        resolve({ accepted: info.accepted.map(String), rejected, response: info.response });
      });
    });
  }

  /** close - QUIT politely (bounded), then drop the socket. */
  close(): void {
    this.broken = true;
    try {
      this.conn.quit();
    } catch {
      /* already gone */
    }
    setTimeout(() => this.conn.close(), 2000).unref();
  }

  private async reset(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.conn.reset((err) => (err ? reject(toSmtpError(err)) : resolve())));
    this.dirty = false;
  }
}

function connect(host: Host, opts: SessionOptions, plain: boolean, tlsRequired: boolean): Promise<SMTPConnection> {
  const conn = new SMTPConnection({
    host: host.host,
    port: host.port,
    name: opts.hostname,
    secure: false,
    ignoreTLS: plain,
    opportunisticTLS: true,
    requireTLS: tlsRequired,
    tls: opts.tls
      ? { rejectUnauthorized: opts.tls.verify, servername: opts.tls.servername, ca: opts.tls.ca }
      : { rejectUnauthorized: false, servername: host.name ?? (/^[\d.:]+$/.test(host.host) ? undefined : host.host) },
    connectionTimeout: opts.connectTimeoutMs,
    greetingTimeout: opts.connectTimeoutMs,
    socketTimeout: opts.commandTimeoutMs,
  });
  return new Promise<SMTPConnection>((resolve, reject) => {
    let settled = false;
    conn.once('error', (err) => {
      if (settled) return;
      settled = true;
      conn.close();
      reject(toSmtpError(err));
    });
    conn.connect(() => {
      if (settled) return;
      settled = true;
      resolve(conn);
    });
  });
}

function toSmtpError(err: Error): SmtpError {
  const e = err as SMTPConnection.SMTPError;
  return new SmtpError(e.response ? e.response : err.message, e.responseCode ?? 0, e.response ?? '', e.code ?? '');
}
