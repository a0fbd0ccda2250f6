// protocol - smtp-server's engine with the few Postfix behaviours it lacks, added by subclassing
// its connection class (one place, so a library upgrade is checked here only):
//
// - "enhanced code passthrough": a reply text that starts with an RFC 3463 code (`5.7.1 ...`)
//   is sent as is; the library would otherwise prefix its own guess (`554 5.6.0 5.7.1 ...`).
// - "AUTH only after TLS": AUTH is neither advertised nor accepted before STARTTLS (503 5.5.1),
//   except from loopback when allow_plaintext_auth_loopback is set.
// - "hard error limit": after max_errors 4xx/5xx replies the session ends with 421.
// - "two idle timeouts": command_timeout_s between commands, data_timeout_s inside DATA.
// - "per-record deadline" (Postfix smtpd_per_record_deadline): a command line must be complete
//   within command_timeout_s of our last reply, however its bytes trickle in; DATA within
//   data_timeout_s plus 1/min_data_rate s per byte (smtpd_min_data_rate). Then 421 4.4.2.
// - "recipient limit per command": every accepted RCPT counts against max_recipients, repeated
//   addresses too (the library counts distinct ones); refused ones count as errors.
// - "pipelining synchronization" (Postfix smtpd_forbid_unauth_pipelining, the SMTP smuggling
//   mitigation): input before the greeting, pipelined in a HELO session, or following a
//   command RFC 2920 says must end a group (EHLO, HELO, DATA, NOOP, VRFY, EXPN, QUIT) — message
//   data sent before 354 among them — gets 554 5.5.0 and the connection is closed.
// - "greet pause": the greeting is sent after greet_pause_ms (the library waits 100 ms always).

import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';

import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

import { Deadline } from '../shared/deadline.js';

export interface ProtocolLimits {
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  /** Bytes per second DATA must keep up on average (0 = no rate rule). */
  minDataRate: number;
  maxRecipients: number;
  maxErrors: number;
  greetPauseMs: number;
  forbidUnauthPipelining: boolean;
  /** Whether a connection may use AUTH before TLS. */
  plaintextAuthAllowed(remoteAddress: string): boolean;
  /** Called once when a session is cut off for too many errors. */
  onTooManyErrors(remoteAddress: string): void;
  /** Called once when a session is cut off for a pipelining violation. */
  onPipeliningViolation(remoteAddress: string, command: string, where: string): void;
  /** Called once when a deadline cut a session off. */
  onDeadline(remoteAddress: string, phase: 'command' | 'data' | 'tls'): void;
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** RFC 2920 section 3.1: these may only be the last command of a group. */
const LAST_IN_GROUP = new Set(['EHLO', 'HELO', 'DATA', 'NOOP', 'VRFY', 'EXPN', 'TURN', 'QUIT']);

type WriteFn = (chunk: Buffer, enc: BufferEncoding, next: (err?: Error | null) => void) => void;

/**
 * InputTracker - how much client input the parser holds beyond the command it is dispatching.
 * smtp-server splits a chunk into lines inside one closure; this mirrors its arithmetic (the
 * chunk, plus the partial line kept from before, minus each line and its CRLF or LF). After a
 * message the parser calls itself again on the rest of the same stream chunk, so what waits
 * behind it is the stream's buffer minus the chunk the stream handed in (`streamChunk`).
 */
class InputTracker {
  private remainder = '';
  private chunk: Buffer = Buffer.alloc(0);
  private consumed = 0;
  private streamChunk = 0;

  constructor(private readonly parser: SMTPStream & { _write: WriteFn; _writableState?: { onwrite?: unknown } }) {
    const write = parser._write.bind(parser);
    parser._write = (chunk, enc, next) => {
      // Node's Writable calls with its own `onwrite`; the parser's calls on itself do not.
      if (next === parser._writableState?.onwrite) this.streamChunk = chunk ? chunk.length : 0;
      if (!parser._dataMode && chunk && chunk.length) {
        this.remainder = parser._remainder;
        this.chunk = chunk;
        this.consumed = 0;
      }
      write(chunk, enc, next);
    };
  }

  /** line - the parser has taken LINE (without its line end) off the input. */
  line(line: Buffer): void {
    const at = this.consumed + line.length;
    this.consumed = at + (this.charAt(at) === 13 ? 2 : 1);
  }

  /** more - input is waiting after the line just taken: in this chunk or queued behind it. */
  more(socket: net.Socket): boolean {
    const total = this.remainder.length + this.chunk.length;
    const queued = this.parser._writableState?.onwrite ? this.parser.writableLength > this.streamChunk : false;
    return this.consumed < total || queued || socket.readableLength > 0;
  }

  private charAt(i: number): number {
    return i < this.remainder.length ? this.remainder.charCodeAt(i) : (this.chunk[i - this.remainder.length] ?? 10);
  }
}

/** FancyConnection - one SMTP session: the library's state machine plus the rules above. */
class FancyConnection extends SMTPConnection {
  private errors = 0;
  /** RCPT commands accepted in this transaction, a repeated address counted again. */
  private rcptAccepted = 0;
  private tracker: InputTracker | null = null;
  private readonly deadline: Deadline;

  constructor(
    server: SMTPServer,
    socket: net.Socket | tls.TLSSocket,
    options: SMTPConnectionOptions | null | undefined,
    private readonly limits: ProtocolLimits,
  ) {
    super(server, socket, options);
    // The library made its parser inside super(), before this class could watch it.
    if (this._parser) this.tracker = new InputTracker(this._parser as never);
    this.deadline = new Deadline({
      onExpire: () => this.deadlinePassed(),
      // Not the client's fault while a handler (or the decision on a received message) runs.
      held: () => this._handlerPending || (!!this._dataStream && !!this._parser && !this._parser._dataMode),
    });
  }

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    // Called again for the TLS session after STARTTLS; the first call is in super() (see above).
    if (this.limits) this.tracker = new InputTracker(parser as never);
    return parser;
  }

  private deadlinePassed(): void {
    if (this._closing || this._closed) return void this._socket.destroy();
    const phase = this._upgrading ? 'tls' : this._parser && this._parser._dataMode ? 'data' : 'command';
    this.limits.onDeadline(this.remoteAddress, phase);
    // Nothing can be said in the middle of a TLS handshake.
    if (phase === 'tls') return void this._socket.destroy();
    super.send(421, '4.4.2 Error: timeout exceeded', false);
  }

  override _onClose(): void {
    this.deadline.stop();
    super._onClose();
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    this.tracker?.line(command);
    // Plaintext behind STARTTLS: the library discards it silently.
    if (this.limits.forbidUnauthPipelining && !this._upgrading && !this._closing) {
      const verb = command.toString('latin1').split(' ', 1)[0]!.toUpperCase();
      const where = !this._ready
        ? 'before the greeting'
        : this._nextHandler
          ? null
          : !this.tracker?.more(this._socket as net.Socket)
            ? null
            : LAST_IN_GROUP.has(verb)
              ? `after ${verb}`
              : this.openingCommand !== 'EHLO'
                ? `without EHLO`
                : null;
      if (where) return this.pipeliningViolation(verb, where);
    }
    super._onCommand(command, callback);
  }

  private pipeliningViolation(verb: string, where: string): void {
    this.limits.onPipeliningViolation(this.remoteAddress, verb.slice(0, 16), where);
    super.send(554, '5.5.0 Error: SMTP protocol synchronization', false);
    this.close();
  }

  override init(): void {
    this._setListeners(() => {
      // No pause: greet in this turn (setTimeout(0) is stretched to 1 ms by Node; measured: the
      // greeting took 1.5 ms after connect, a third of a whole one-message session's time).
      if (this.limits.greetPauseMs === 0) return void this.connectionReady();
      const t = setTimeout(() => this.connectionReady(), this.limits.greetPauseMs);
      t.unref();
    });
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (typeof data === 'string' && ENHANCED.test(data)) context = false;
    // The library's one reply to an accepted RCPT (its context names it).
    if (code === 250 && context === 'RCPT_TO_OK') this.rcptAccepted++;
    super.send(code, data, context);
    // Each reply starts the deadline for the next command line (DATA sets its own below).
    if (this._closing || this._closed) this.deadline?.stop();
    else if (this._ready && !(this._parser && this._parser._dataMode)) this.deadline?.start(this.limits.commandTimeoutMs);
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

  override handler_RCPT(command: Buffer, callback: () => void): void {
    if (this.session.envelope?.mailFrom && this.rcptAccepted >= this.limits.maxRecipients) {
      this.send(452, '4.5.3 Error: too many recipients');
      return callback();
    }
    super.handler_RCPT(command, callback);
  }

  override handler_DATA(command: Buffer, callback: () => void): void {
    const parser = this._parser;
    super.handler_DATA(command, callback);
    if (parser && parser._dataMode) {
      this.setIdle(this.limits.dataTimeoutMs);
      this.deadline.start(this.limits.dataTimeoutMs, { minRate: this.limits.minDataRate, bytes: () => parser.dataBytes });
    }
  }

  override _resetSession(): void {
    this.rcptAccepted = 0;
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

// Session ids: unique in this process (counter) and across restarts and threads (random prefix).
const SESSION_ID_PREFIX = randomBytes(5).toString('hex');
let nextSessionId = 1;

/** FancySmtpServer - an SMTPServer whose sessions are FancyConnections. */
export class FancySmtpServer extends SMTPServer {
  constructor(
    options: SMTPServerOptions,
    private readonly limits: ProtocolLimits,
  ) {
    super(options);
  }

  /**
   * _handleProxy - without a PROXY header to read, the session starts in this turn (the library
   * waits a setImmediate: under load a turn of the event loop, about a fifth of the greeting's
   * time) and its id is a counter after a random prefix (the library's is 10 random bytes each).
   */
  override _handleProxy(socket: net.Socket, callback: (err: Error | null, socketOptions?: SMTPConnectionOptions & { id: string }) => void): void {
    if (this._expectsProxyHeader(socket)) return super._handleProxy(socket, callback);
    const id = SESSION_ID_PREFIX + (nextSessionId++).toString(32).padStart(8, '0');
    callback(null, { id, ignore: !!this.options.ignoredHosts?.includes(socket.remoteAddress ?? '') });
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
