// Session - one POP3 connection: the RFC 1939 state machine (AUTHORIZATION -> TRANSACTION ->
// UPDATE) with the command handlers in a table keyed by verb, as smtp-server does for SMTP.
//
// Commands run one at a time in arrival order, so pipelining (RFC 2449) is safe. Every limit
// of the connection lives here: line length, bad commands, failed logins (delayed, then the
// connection is closed), the autologout timer, and the plaintext-login policy.

import { closeSync, readSync } from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';
import tls from 'node:tls';

import { type IpcClient, replyText } from '../ipc/index.js';
import { canonicalUser } from '../mail/address.js';
import { decodePlain } from '../mail/sasl.js';
import { isLoopbackIp, normalizeIp } from '../shared/client-ip.js';
import { Deadline } from '../shared/deadline.js';
import type { Logger } from '../shared/log.js';
import { connections } from '../shared/metrics.js';
import { DotStuffer, TopCut } from './body-encoder.js';
import type { Pop3dConfig } from './config.js';
import { LineReader } from './line-reader.js';
import type { MaildropLocks } from './locks.js';
import { type Body, Maildrop, type MessageInfo } from './maildrop.js';
import { OUT_BYTES, ReplyOut } from './reply-out.js';

/** What every session of one pop3d shares. */
export interface SessionDeps {
  /** Read at each use, so a reload applies to new decisions. */
  cfg(): Pop3dConfig;
  secureContext: tls.SecureContext;
  authd: IpcClient;
  /** A fresh mailboxd connection: one per session, as mailboxd numbers messages per connection. */
  /** A mailboxd connection: the user's mailbox host HOST (from authd), else the configured one. */
  openMailboxd(host?: string): IpcClient;
  locks: MaildropLocks;
  logger: Logger;
}

type State = 'AUTHORIZATION' | 'TRANSACTION' | 'UPDATE';

interface Command {
  states: readonly State[];
  /** Allowed number of space-separated arguments; 'rest' = the whole rest of the line (PASS). */
  args: [number, number] | 'rest';
  run(s: Session, args: string[]): void | Promise<void>;
}

const AUTH: readonly State[] = ['AUTHORIZATION'];
const TRANS: readonly State[] = ['TRANSACTION'];
const ANY: readonly State[] = ['AUTHORIZATION', 'TRANSACTION'];

/** RETRs pipelined right behind the current one whose mailboxd `retr` is sent ahead of time. */
const READ_AHEAD = 8;

/** Written but not yet taken by the client: past this much a session waits before it goes on. */
const QUEUED_BYTES = 256 * 1024;

/** Reply buffer room kept for the status line before a file's first piece (ample: the longest is 30 bytes). */
const FIRST_PIECE_SLACK = 128;

/** The piece read at a time once a file has run past its listed size. */
const PAST_LISTED_PIECE = 64 * 1024;

/** An overlong line that never ends is dropped this far, then the connection is closed. */
const ABSURD_LINE_BYTES = 64 * 1024;

const COMMANDS = new Map<string, Command>([
  ['CAPA', { states: ANY, args: [0, 0], run: (s) => s.capa() }],
  // RFC 1939: NOOP is a TRANSACTION command; before login it is -ERR like STAT or LIST.
  ['NOOP', { states: TRANS, args: [0, 0], run: (s) => s.ok('') }],
  ['QUIT', { states: ANY, args: [0, 0], run: (s) => s.quit() }],
  ['USER', { states: AUTH, args: [1, 1], run: (s, a) => s.userCmd(a[0]!) }],
  ['PASS', { states: AUTH, args: 'rest', run: (s, a) => s.passCmd(a[0]!) }],
  ['AUTH', { states: AUTH, args: [0, 2], run: (s, a) => s.authCmd(a) }],
  ['STLS', { states: AUTH, args: [0, 0], run: (s) => s.stls() }],
  ['STAT', { states: TRANS, args: [0, 0], run: (s) => s.stat() }],
  ['LIST', { states: TRANS, args: [0, 1], run: (s, a) => s.list(a[0], false) }],
  ['UIDL', { states: TRANS, args: [0, 1], run: (s, a) => s.list(a[0], true) }],
  ['RETR', { states: TRANS, args: [1, 1], run: (s, a) => s.retr(a[0]!, null) }],
  ['TOP', { states: TRANS, args: [2, 2], run: (s, a) => s.retr(a[0]!, a[1]!) }],
  ['DELE', { states: TRANS, args: [1, 1], run: (s, a) => s.dele(a[0]!) }],
  ['RSET', { states: TRANS, args: [0, 0], run: (s) => s.rset() }],
]);

let nextSessionId = 1;

export class Session {
  readonly id = nextSessionId++;
  readonly clientIp: string;
  private sock: net.Socket | tls.TLSSocket;
  private tls: boolean;
  private readonly reader: LineReader;
  private readonly out: ReplyOut;
  private state: State = 'AUTHORIZATION';
  private pendingUser: string | null = null;
  /** Set once the maildrop lock is held (released in cleanup). */
  private user: string | null = null;
  private mailboxd: IpcClient | null = null;
  private maildrop: Maildrop | null = null;
  /** mailboxd replies requested ahead, in order: exactly the RETR lines next in the buffer. */
  private ahead: Array<{ n: number; reply: Promise<Body> }> = [];
  private loginFailures = 0;
  private badCommands = 0;
  private closing = false;
  private endReason = 'dropped';
  private deleted = 0;
  private retrieved = 0;
  private retrievedBytes = 0;
  private readonly log: Logger;
  /** The per-line deadline: a whole command line within idle_timeout_s of our last reply. */
  private readonly deadline: Deadline;

  constructor(
    sock: net.Socket | tls.TLSSocket,
    isTls: boolean,
    private readonly deps: SessionDeps,
  ) {
    this.sock = sock;
    this.tls = isTls;
    this.clientIp = normalizeIp(sock.remoteAddress ?? '');
    this.log = deps.logger.child({ session: this.id, client: this.clientIp });
    sock.setNoDelay(true);
    sock.on('error', () => {});
    this.reader = new LineReader(sock, deps.cfg().max_line_bytes, ABSURD_LINE_BYTES);
    this.out = new ReplyOut(sock);
    // Not the client's fault while our reply is still on its way out (a big RETR, slowly read).
    this.deadline = new Deadline({ onExpire: () => this.autologout(), held: () => this.sock.writableLength > 0 || this.out.gathered > 0 });
    this.armIdleTimer();
  }

  /** run - greet, serve commands until QUIT or the connection ends, then clean up. */
  async run(): Promise<void> {
    connections.inc({ server: 'pop3d' });
    try {
      this.send('+OK FancyMail POP3 server ready');
      while (!this.closing) {
        // Pipelined commands already here: their replies are gathered and go out together, in
        // one write, when the last of them is answered or the buffer is full (as Dovecot's
        // corked output), not one write each.
        if (this.state !== 'TRANSACTION' || !this.reader.hasLine()) this.out.idle();
        this.deadline.start(this.deps.cfg().idle_timeout_s * 1000);
        const r = await this.reader.next();
        this.deadline.stop();
        if (r === null) break;
        if (r.kind === 'absurd') {
          this.send('-ERR Line too long, closing connection');
          this.hangup('line too long');
          break;
        }
        if (r.kind === 'too-long') this.bad('Line too long');
        else await this.dispatch(r.line);
      }
    } catch (err) {
      this.log.warn({ event: 'pop3d.session_error', err: String(err) }, 'session failed');
      this.sock.destroy();
    } finally {
      this.deadline.stop();
      this.cleanup();
      connections.dec({ server: 'pop3d' });
    }
  }

  /** abort - end the session now (server shutdown); nothing marked is deleted. */
  abort(text: string): void {
    if (this.sock.destroyed) return;
    this.endReason = 'shutdown';
    this.send(`-ERR [SYS/TEMP] ${text}`);
    this.out.flush();
    this.closing = true;
    this.sock.destroy();
  }

  private async dispatch(line: string): Promise<void> {
    const sp = line.indexOf(' ');
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const rest = sp < 0 ? '' : line.slice(sp + 1);
    const cmd = COMMANDS.get(verb);
    if (!cmd) return this.bad('Unknown command');
    if (!cmd.states.includes(this.state)) {
      return this.bad(this.state === 'AUTHORIZATION' ? `${verb} is not allowed before login` : `${verb} is not allowed after login`);
    }
    let args: string[];
    if (cmd.args === 'rest') {
      args = [rest];
    } else {
      args = rest.trim() === '' ? [] : rest.trim().split(/ +/);
      const [min, max] = cmd.args;
      if (args.length < min || args.length > max) return this.bad(`Wrong number of arguments for ${verb}`);
    }
    await cmd.run(this, args);
  }

  // ---- replies and limits ----

  /** pace - back-pressure: past QUEUED_BYTES not yet taken by the client, wait until it has. */
  private async pace(): Promise<void> {
    if (this.sock.writableLength >= QUEUED_BYTES) await drained(this.sock);
  }

  private send(line: string): void {
    this.out.text(line + '\r\n');
  }

  ok(text: string): void {
    this.send(text ? `+OK ${text}` : '+OK');
  }

  private err(text: string): void {
    this.send(`-ERR ${text}`);
  }

  /** bad - a protocol error by the client; too many of them and the connection is closed. */
  private bad(text: string): void {
    this.badCommands++;
    if (this.badCommands >= this.deps.cfg().max_bad_commands) {
      this.err(`${text}; too many bad commands, closing connection`);
      this.hangup('bad commands');
      return;
    }
    this.err(text);
  }

  /** hangup - close after what has been written (no further commands are read). */
  private hangup(reason: string): void {
    this.closing = true;
    this.endReason = reason;
    this.out.flush();
    this.sock.end();
    const s = this.sock;
    setTimeout(() => s.destroy(), 2000).unref();
  }

  /** armIdleTimer - the autologout timer (RFC 1939 §3): silence ends the session, no UPDATE. */
  private armIdleTimer(): void {
    this.sock.setTimeout(this.deps.cfg().idle_timeout_s * 1000, () => this.autologout());
  }

  private autologout(): void {
    if (this.closing) return;
    this.endReason = 'idle timeout';
    this.send('-ERR Autologout; idle for too long');
    this.out.flush();
    this.closing = true;
    this.sock.end();
    const s = this.sock;
    setTimeout(() => s.destroy(), 1000).unref();
  }

  private plaintextAllowed(): boolean {
    const cfg = this.deps.cfg();
    return this.tls || cfg.allow_plaintext_auth || (cfg.allow_plaintext_loopback && isLoopbackIp(this.clientIp));
  }

  // ---- AUTHORIZATION ----

  capa(): void {
    const caps = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];
    if (this.state === 'AUTHORIZATION') {
      if (!this.tls) caps.push('STLS');
      if (this.plaintextAllowed()) caps.push('USER', 'SASL PLAIN');
    }
    caps.push('IMPLEMENTATION FancyMail');
    this.out.text(`+OK Capability list follows\r\n${caps.join('\r\n')}\r\n.\r\n`);
  }

  userCmd(name: string): void {
    if (!this.plaintextAllowed()) return this.err('[AUTH] Plaintext authentication disallowed without TLS; use STLS first');
    this.pendingUser = name;
    this.ok('Send your password');
  }

  async passCmd(password: string): Promise<void> {
    if (!this.plaintextAllowed()) return this.err('[AUTH] Plaintext authentication disallowed without TLS; use STLS first');
    const name = this.pendingUser;
    this.pendingUser = null;
    if (name === null) return this.bad('USER first');
    await this.login(name, password);
  }

  async authCmd(args: string[]): Promise<void> {
    if (args.length === 0) {
      // RFC 1734 style: list the mechanisms.
      this.out.text('+OK Mechanisms follow\r\nPLAIN\r\n.\r\n');
      return;
    }
    if (args[0]!.toUpperCase() !== 'PLAIN') return this.err('Unsupported authentication mechanism');
    if (!this.plaintextAllowed()) return this.err('[AUTH] Plaintext authentication disallowed without TLS; use STLS first');
    let response = args[1];
    if (response === undefined) {
      this.send('+ ');
      this.out.idle();
      const r = await this.reader.next();
      if (r === null) return;
      if (r.kind !== 'line') return this.bad('Authentication line too long');
      response = r.line.trim();
      if (response === '*') return this.err('Authentication cancelled');
    }
    const creds = decodePlain(response === '=' ? '' : response);
    if (!creds) return this.loginFailed('(malformed)');
    await this.login(creds.authcid, creds.password);
  }

  /** stls - RFC 2595: upgrade in place; anything pipelined after STLS is thrown away. */
  stls(): void {
    if (this.tls) return this.err('Already using TLS');
    const raw = this.sock as net.Socket;
    this.send('+OK Begin TLS negotiation');
    this.out.idle();
    // Synchronously from here on: no plaintext byte after the command reaches a handler.
    this.reader.detach();
    raw.setTimeout(0);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.deps.secureContext });
    secure.on('error', (err) => this.log.debug({ event: 'pop3d.tls_error', err: String(err) }, 'TLS failed'));
    this.sock = secure;
    this.out.setSocket(secure);
    this.tls = true;
    this.pendingUser = null;
    this.reader.reattach(secure);
    this.armIdleTimer();
  }

  private async login(name: string, password: string): Promise<void> {
    let reply;
    try {
      reply = await this.deps.authd.request('auth', [name, password, this.clientIp]);
    } catch (err) {
      this.log.error({ event: 'pop3d.authd_unavailable', err: String(err) }, 'authd unavailable');
      return this.err('[SYS/TEMP] Authentication service unavailable, try again later');
    }
    if (!reply.ok) return this.loginFailed(name);
    const user = replyText(reply) || canonicalUser(name);
    if (!this.deps.locks.tryAcquire(user)) {
      this.log.info({ event: 'pop3d.in_use', user }, 'maildrop already in use');
      return this.err('[IN-USE] Mailbox is locked by another POP3 session');
    }
    this.user = user;
    this.mailboxd = this.deps.openMailboxd(reply.params[1] || undefined);
    try {
      this.maildrop = await Maildrop.open(this.mailboxd, user);
    } catch (err) {
      this.log.error({ event: 'pop3d.list_failed', user, err: String(err) }, 'cannot list the maildrop');
      this.releaseMaildrop();
      return this.err('[SYS/TEMP] Mailbox unavailable, try again later');
    }
    this.state = 'TRANSACTION';
    const { count, octets } = this.maildrop.stat();
    this.log.info({ event: 'pop3d.login', user, tls: this.tls, messages: count }, 'logged in');
    this.ok(`Logged in, ${count} messages (${octets} octets)`);
  }

  private async loginFailed(name: string): Promise<void> {
    this.loginFailures++;
    this.log.info({ event: 'pop3d.auth_failed', user: name, failures: this.loginFailures }, 'login failed');
    const cfg = this.deps.cfg();
    await new Promise((r) => setTimeout(r, cfg.failed_login_delay_ms));
    if (this.loginFailures >= cfg.max_login_failures) {
      this.err('[AUTH] Authentication failed; too many failures, closing connection');
      this.hangup('login failures');
      return;
    }
    this.err('[AUTH] Authentication failed');
  }

  // ---- TRANSACTION ----

  /** message - the live message an argument names, or an -ERR sent and undefined. */
  private message(arg: string): MessageInfo | undefined {
    const n = /^[0-9]{1,9}$/.test(arg) ? Number(arg) : NaN;
    const m = Number.isNaN(n) ? undefined : this.maildrop!.messages[n - 1];
    if (!m) {
      this.err('No such message');
      return undefined;
    }
    if (m.deleted) {
      this.err(`Message ${n} already deleted`);
      return undefined;
    }
    return m;
  }

  stat(): void {
    const { count, octets } = this.maildrop!.stat();
    this.ok(`${count} ${octets}`);
  }

  list(arg: string | undefined, uidl: boolean): void {
    const field = (m: MessageInfo): string => (uidl ? m.uid : String(m.size));
    if (arg !== undefined) {
      const m = this.message(arg);
      if (m) this.ok(`${m.n} ${field(m)}`);
      return;
    }
    const { count, octets } = this.maildrop!.stat();
    let text = uidl ? '+OK Unique-ID listing follows\r\n' : `+OK ${count} messages (${octets} octets)\r\n`;
    for (const m of this.maildrop!.live()) text += `${m.n} ${field(m)}\r\n`;
    this.out.text(text + '.\r\n');
  }

  /** retr - RETR (topLines null) or TOP: read directly or streamed from mailboxd, dot-stuffed on the way. */
  async retr(arg: string, topLines: string | null): Promise<void> {
    let lines: number | null = null;
    if (topLines !== null) {
      if (!/^[0-9]{1,9}$/.test(topLines)) return this.err('Invalid number of lines');
      lines = Number(topLines);
    }
    const m = this.message(arg);
    if (!m) return;
    const top = lines === null ? null : new TopCut(lines);
    const fd = m.file ? this.maildrop!.openFile(m) : null;
    if (fd !== null) {
      const read = await this.sendFile(fd, m.size, top);
      if (read >= 0) return this.countRetr(m, read, top);
      m.file = undefined; // not a regular file: mailboxd's answer from now on
    }
    let res: Body;
    try {
      // This message's request goes out first: mailboxd answers in the order asked.
      let pending: Promise<Body>;
      if (this.ahead.length > 0) {
        // Guaranteed by readAhead: this command is the head of the requests sent ahead.
        const head = this.ahead.shift()!;
        if (head.n !== m.n) throw new Error(`read-ahead out of step: ${head.n} != ${m.n}`);
        pending = head.reply;
      } else {
        pending = this.maildrop!.body(m);
      }
      if (lines === null) this.readAhead(m.n);
      res = await pending;
    } catch (err) {
      this.log.error({ event: 'pop3d.retr_failed', user: this.user, n: m.n, err: String(err) }, 'mailboxd retr failed');
      return this.err('[SYS/TEMP] Mailbox unavailable, try again later');
    }
    if (!res.ok) return this.err(`Message ${m.n} is no longer available`);
    this.out.text(status(res.size, top));
    await this.sendStream(res.stream, top);
    this.countRetr(m, res.size, top);
  }

  /** countRetr - one line per session (at logout, as Dovecot does) counts the RETRs; each one is debug. */
  private countRetr(m: MessageInfo, size: number, top: TopCut | null): void {
    if (top) return;
    this.retrieved++;
    this.retrievedBytes += size;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ event: 'pop3d.retr', user: this.user, n: m.n, uid: m.uid, size }, 'message retrieved');
  }

  /**
   * readAhead - "read-ahead" for pipelining clients (mpop, fetchmail) when messages come over
   * IPC: the RETRs buffered right behind this one are asked of mailboxd now, so its file work
   * overlaps our sending. Only an unbroken run of RETRs is taken: nothing between them can
   * change what they will find. mailboxd answers in order on the session's connection, so
   * each reply waits its turn. Messages read directly need none of this.
   */
  private readAhead(current: number): void {
    // The first ahead.length buffered lines are the RETRs already asked for.
    const lines = this.reader.peekLines(READ_AHEAD + 1);
    const asked = new Set([current, ...this.ahead.map((x) => x.n)]);
    for (const line of lines.slice(this.ahead.length)) {
      if (this.ahead.length >= READ_AHEAD) break;
      const match = /^RETR ([0-9]{1,9})$/i.exec(line.trim());
      if (!match) break;
      const n = Number(match[1]);
      const m = this.maildrop!.messages[n - 1];
      // A repeat would need a second reply for the same number: stop the run there.
      if (!m || m.deleted || m.file || asked.has(n)) break;
      const reply = this.maildrop!.body(m);
      reply.catch(() => {});
      this.ahead.push({ n, reply });
      asked.add(n);
    }
  }

  /**
   * sendFile - a message file read directly (fd, closed here; SIZE as listed) with its status
   * line: the file read piece by piece straight into the reply buffer and dot-stuffed where it
   * lies, then the terminator. Read to its end, whatever SIZE said (a short read is the end of
   * a regular file). Memory stays at a buffer or two whatever the size (back-pressure between
   * pieces); a small message is one read and, with its status line, one write. Returns the
   * bytes read, or -1 with nothing sent when the first read fails (not a regular file): the
   * status line and the first piece are gathered together, so that read can still be undone.
   */
  private async sendFile(fd: number, size: number, top: TopCut | null): Promise<number> {
    try {
      const head = status(size, top);
      this.out.reserve(Math.min(size + (size >> 4) + FIRST_PIECE_SLACK, OUT_BYTES));
      const mark = this.out.at;
      this.out.text(head);
      const stuffer = new DotStuffer();
      let pos = 0;
      for (;;) {
        // Room for the rest and what stuffing adds to it (a sixteenth, usually far less), or
        // nearly a whole buffer (never a flush before the first read: see above).
        // Past the listed size (a file longer than its name says): big pieces until the end.
        const left = size > pos ? size - pos : PAST_LISTED_PIECE;
        const buf = this.out.reserve(Math.min(left + (left >> 4) + 64, OUT_BYTES - FIRST_PIECE_SLACK));
        const at = this.out.at;
        const room = buf.length - at;
        // One byte more than expected: a read that comes back short is the end of the file.
        const want = Math.min(size > pos ? left + 1 : left, room - (room >> 4));
        let n: number;
        try {
          n = readSync(fd, buf, at, want, pos);
        } catch (err) {
          if (pos > 0) throw err;
          this.out.truncate(mark);
          return -1;
        }
        pos += n;
        if (n > 0) {
          const end = top ? at + top.cut(buf.subarray(at, at + n)).length : at + n;
          const stuffed = stuffer.stuffInPlace(buf, at, end, buf.length);
          if (stuffed >= 0) this.out.commit(stuffed - at);
          else this.out.bytes(stuffer.encode(buf.subarray(at, end))); // unusually many dots or bare LFs
        }
        if (n < want || top?.complete) break;
        await this.pace();
        if (this.sock.destroyed) throw new Error('client went away during RETR');
      }
      this.out.bytes(stuffer.finish());
      await this.pace();
      return pos;
    } finally {
      closeSync(fd);
    }
  }

  /** sendStream - a message from mailboxd's `retr`, dot-stuffed chunk by chunk, read to its end even after a TOP cut (the connection stays in step). */
  private async sendStream(source: AsyncIterable<Buffer>, top: TopCut | null): Promise<void> {
    const stuffer = new DotStuffer();
    for await (const chunk of source) {
      const part = top ? top.cut(chunk) : chunk;
      if (part.length === 0) continue;
      this.out.bytes(stuffer.encode(part));
      await this.pace();
      if (this.sock.destroyed) throw new Error('client went away during RETR');
    }
    this.out.bytes(stuffer.finish());
  }

  dele(arg: string): void {
    const m = this.message(arg);
    if (!m) return;
    m.deleted = true;
    this.ok(`Message ${m.n} deleted`);
  }

  rset(): void {
    this.maildrop!.reset();
    const { count, octets } = this.maildrop!.stat();
    this.ok(`Maildrop has ${count} messages (${octets} octets)`);
  }

  /** quit - in TRANSACTION, the UPDATE state: only now are marked messages removed. */
  async quit(): Promise<void> {
    if (this.state === 'AUTHORIZATION') {
      this.ok('FancyMail POP3 server signing off');
      this.hangup('quit');
      return;
    }
    this.state = 'UPDATE';
    let failed = 0;
    try {
      const r = await this.maildrop!.commit();
      this.deleted = r.deleted;
      failed = r.failed;
    } catch {
      failed = 1;
    }
    if (failed > 0) this.err('[SYS/TEMP] Some deleted messages were not removed');
    else this.ok(`FancyMail POP3 server signing off (${this.deleted} messages deleted)`);
    this.hangup('quit');
  }

  // ---- the end ----

  private releaseMaildrop(): void {
    this.mailboxd?.close();
    this.mailboxd = null;
    this.maildrop = null;
    if (this.user !== null) this.deps.locks.release(this.user);
    this.user = null;
  }

  private cleanup(): void {
    if (this.state !== 'AUTHORIZATION' && this.user !== null) {
      this.log.info({ event: 'pop3d.logout', user: this.user, retr: this.retrieved, retr_bytes: this.retrievedBytes, deleted: this.deleted, reason: this.endReason }, 'logged out');
    }
    this.releaseMaildrop();
    this.reader.detach();
    if (!this.sock.destroyed) {
      this.out.idle();
      this.sock.end();
      const s = this.sock;
      setTimeout(() => s.destroy(), 2000).unref();
    }
  }
}

/** drained - the socket can take more, or is gone. */
function drained(sock: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/** status - the first line of a RETR (with the size) or TOP reply. */
function status(size: number, top: TopCut | null): string {
  return top ? '+OK Top of message follows\r\n' : `+OK ${size} octets\r\n`;
}
