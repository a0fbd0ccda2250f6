// protocol - smtp-server's engine with the few Postfix behaviours it lacks, added by subclassing
// its connection class (one place, so a library upgrade is checked here only):
//
// - "enhanced code passthrough": a reply text that starts with an RFC 3463 code (`5.7.1 ...`)
//   is sent as is; the library would otherwise prefix its own guess (`554 5.6.0 5.7.1 ...`).
// - "AUTH only after TLS": AUTH is neither advertised nor accepted before STARTTLS (503 5.5.1),
//   except from loopback when allow_plaintext_auth_loopback is set.
// - "hard error limit": after max_errors 4xx/5xx replies the session ends with 421.
// - "two idle timeouts": command_timeout_s between commands, data_timeout_s inside DATA.
// - "greet pause": the greeting is sent after greet_pause_ms (the library waits 100 ms always).

import type net from 'node:net';
import type tls from 'node:tls';

import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';

export interface ProtocolLimits {
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  maxErrors: number;
  greetPauseMs: number;
  /** Whether a connection may use AUTH before TLS. */
  plaintextAuthAllowed(remoteAddress: string): boolean;
  /** Called once when a session is cut off for too many errors. */
  onTooManyErrors(remoteAddress: string): void;
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** FancyConnection - one SMTP session: the library's state machine plus the rules above. */
class FancyConnection extends SMTPConnection {
  private errors = 0;

  constructor(
    server: SMTPServer,
    socket: net.Socket | tls.TLSSocket,
    options: SMTPConnectionOptions | null | undefined,
    private readonly limits: ProtocolLimits,
  ) {
    super(server, socket, options);
  }

  override init(): void {
    this._setListeners(() => {
      const t = setTimeout(() => this.connectionReady(), this.limits.greetPauseMs);
      t.unref();
    });
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (typeof data === 'string' && ENHANCED.test(data)) context = false;
    super.send(code, data, context);
    if (code >= 400 && code !== 421 && !this._closing && !this._closed) {
      this.errors++;
      if (this.errors >= this.limits.maxErrors) {
        this.limits.onTooManyErrors(this.remoteAddress);
        super.send(421, '4.7.0 Error: too many errors', false);
      }
    }
  }

  private authOffered(): boolean {
    return this.secure || this.limits.plaintextAuthAllowed(this.remoteAddress);
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    if (this.authOffered()) return super.handler_EHLO(command, callback);
    // Hide AUTH from the capability list for this one reply.
    const saved = this.session.disabledCommands;
    this.session.disabledCommands = [...(saved ?? this._server.options.disabledCommands ?? []), 'AUTH'];
    try {
      super.handler_EHLO(command, callback);
    } finally {
      this.session.disabledCommands = saved;
    }
  }

  override handler_AUTH(command: Buffer, callback: () => void): void {
    if (!this.authOffered()) {
      this.send(503, '5.5.1 Error: authentication not enabled');
      return callback();
    }
    super.handler_AUTH(command, callback);
  }

  override handler_DATA(command: Buffer, callback: () => void): void {
    super.handler_DATA(command, callback);
    if (this._parser && this._parser._dataMode) this.setIdle(this.limits.dataTimeoutMs);
  }

  override _resetSession(): void {
    super._resetSession();
    // Called at the end of every DATA (and on RSET/EHLO): back to the command timeout.
    if (!this._upgrading) this.setIdle(this.limits.commandTimeoutMs);
  }

  override _armTimeout(socket: net.Socket = this._socket): void {
    const inData = !!(this._parser && this._parser._dataMode);
    socket.setTimeout(inData ? this.limits.dataTimeoutMs : this.limits.commandTimeoutMs, () => this._onTimeout());
  }

  // Changes the duration only: setTimeout with a callback would add one more listener each time.
  private setIdle(ms: number): void {
    const s = this._socket as net.Socket | undefined;
    if (s && !s.destroyed) s.setTimeout(ms);
  }
}

/** FancySmtpServer - an SMTPServer whose sessions are FancyConnections. */
export class FancySmtpServer extends SMTPServer {
  constructor(
    options: SMTPServerOptions,
    private readonly limits: ProtocolLimits,
  ) {
    super(options);
  }

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new FancyConnection(this, socket, socketOptions, this.limits);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this.emit('error', err));
    connection.on('connect', (data: unknown) => this.emit('connect', data));
    connection.init();
  }

  /** isBusy - a session in the middle of a transaction (MAIL given, DATA running or being decided). */
  static isBusy(c: SMTPConnection): boolean {
    return !!c._dataStream || c._handlerPending || !!c.session.envelope?.mailFrom;
  }
}
