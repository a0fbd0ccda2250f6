// Session - one IMAP connection: the RFC 9051 state machine (not authenticated ->
// authenticated -> selected -> logout) with the command handlers in a table keyed by name.
//
// Commands run one at a time in arrival order (pipelined ones wait in the reader). Before
// each tagged completion the selected mailbox is brought up to date ("change catch-up", see
// view.ts), so a session sees other sessions' changes at the next command, and at once while
// it IDLEs. Every limit of the connection lives here or in the reader: line and literal size,
// the line deadline, bad commands, failed logins, and the autologout timer.

import net from 'node:net';
import type { Writable } from 'node:stream';
import tls from 'node:tls';

import { isLoopbackIp, normalizeIp } from '../shared/client-ip.js';
import type { Logger } from '../shared/log.js';
import { connections } from '../shared/metrics.js';
import { VERSION } from '../shared/version.js';
import type { ImapdConfig } from './config.js';
import { astring, flagList, formatInternalDate, istring, parseDateTime } from './encode.js';
import { type FetchRequest, parseFetchItems, renderFetch } from './fetch.js';
import { BadUrlError, base64Parts, parseAppendMessages, parseImapUrl } from './append.js';
import { emitMailboxEvent } from './mailbox-events.js';
import { type Part, UnknownCteError, leafParts, needsStructure, parseSection, parseStructure, sectionBytes } from './mime.js';
import { NotifyOverflowError, Notifier } from './notifier.js';
import { BadEventError, SUPPORTED_EVENTS, parseNotify } from './notify.js';
import { BadNameError, checkName, fromWire, patternMatcher, specialUse, toWire } from './names.js';
import { Args, ParseError, type Token, atomsOf, parseNumber, splitTagAndCommand, tokenize } from './parser.js';
import { CommandReader, type LiteralVerdict } from './reader.js';
import { BadCharsetError, type ReturnOptions, type SearchProgram, checkCharset, hasFlag, matches, parseReturn, parseSearch, parseSearchKeys } from './search.js';
import { MAX_UPDATE_CONTEXTS, SearchUpdates } from './search-context.js';
import { type Range, SeqMatcher, formatSet, parseSequenceSet } from './sequence.js';
import { type MessageFacts, compareFacts, messageFacts, parseSortCriteria } from './sort.js';
import { type FlagMode, type FolderInfo, type MailStore, type MessageMeta, StoreError, type UserMail } from './store.js';
import { threadResponse } from './thread.js';
import { MailboxView, recentCount } from './view.js';

export type AuthResult = { ok: true; user: string } | { ok: false; temporary: boolean };

/** What every session of one imapd shares. */
export interface SessionDeps {
  /** Read at each use, so a reload applies to new decisions. */
  cfg(): ImapdConfig;
  secureContext: tls.SecureContext;
  authenticate(name: string, password: string, clientIp: string): Promise<AuthResult>;
  store: MailStore;
  logger: Logger;
}

type State = 'notauth' | 'auth' | 'selected' | 'logout';

interface Command {
  states: readonly State[];
  run(s: Session, tag: string, args: Args, uid: boolean): Promise<void> | void;
}

const ANY: readonly State[] = ['notauth', 'auth', 'selected'];
const NOTAUTH: readonly State[] = ['notauth'];
const AUTHED: readonly State[] = ['auth', 'selected'];
const SELECTED: readonly State[] = ['selected'];

const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
/** Messages whose bytes are requested from the store at once during FETCH/SEARCH. */
const FETCH_WINDOW = 32;
/** Part trees kept per session (BODYSTRUCTURE, numbered sections). */
const STRUCTURE_CACHE = 256;
/** Output held before the session waits for the socket to drain (bounds memory per session). */
const OUT_HIGH_WATER = 256 * 1024;
/** Literals before login are small: a user name or a password. */
const PREAUTH_LITERAL_BYTES = 4096;

const COMMANDS = new Map<string, Command>([
  ['CAPABILITY', { states: ANY, run: (s, t, a) => s.capability(t, a) }],
  ['NOOP', { states: ANY, run: (s, t, a) => s.noop(t, a) }],
  ['CHECK', { states: SELECTED, run: (s, t, a) => s.noop(t, a) }],
  ['LOGOUT', { states: ANY, run: (s, t, a) => s.logout(t, a) }],
  ['ID', { states: ANY, run: (s, t, a) => s.idCmd(t, a) }],
  ['STARTTLS', { states: NOTAUTH, run: (s, t, a) => s.starttls(t, a) }],
  ['LOGIN', { states: NOTAUTH, run: (s, t, a) => s.loginCmd(t, a) }],
  ['AUTHENTICATE', { states: NOTAUTH, run: (s, t, a) => s.authenticate(t, a) }],
  ['ENABLE', { states: AUTHED, run: (s, t, a) => s.enable(t, a) }],
  ['NAMESPACE', { states: AUTHED, run: (s, t, a) => s.namespace(t, a) }],
  ['LIST', { states: AUTHED, run: (s, t, a) => s.list(t, a, false) }],
  ['LSUB', { states: AUTHED, run: (s, t, a) => s.list(t, a, true) }],
  ['CREATE', { states: AUTHED, run: (s, t, a) => s.create(t, a) }],
  ['DELETE', { states: AUTHED, run: (s, t, a) => s.deleteCmd(t, a) }],
  ['RENAME', { states: AUTHED, run: (s, t, a) => s.rename(t, a) }],
  ['SUBSCRIBE', { states: AUTHED, run: (s, t, a) => s.subscribe(t, a, true) }],
  ['UNSUBSCRIBE', { states: AUTHED, run: (s, t, a) => s.subscribe(t, a, false) }],
  ['SELECT', { states: AUTHED, run: (s, t, a) => s.select(t, a, false) }],
  ['EXAMINE', { states: AUTHED, run: (s, t, a) => s.select(t, a, true) }],
  ['STATUS', { states: AUTHED, run: (s, t, a) => s.status(t, a) }],
  ['APPEND', { states: AUTHED, run: (s, t, a) => s.append(t, a) }],
  ['NOTIFY', { states: AUTHED, run: (s, t, a) => s.notify(t, a) }],
  ['IDLE', { states: AUTHED, run: (s, t, a) => s.idle(t, a) }],
  ['CLOSE', { states: SELECTED, run: (s, t, a) => s.close(t, a, true) }],
  ['UNSELECT', { states: SELECTED, run: (s, t, a) => s.close(t, a, false) }],
  ['EXPUNGE', { states: SELECTED, run: (s, t, a, u) => s.expunge(t, a, u) }],
  ['SEARCH', { states: SELECTED, run: (s, t, a, u) => s.search(t, a, u) }],
  ['CANCELUPDATE', { states: SELECTED, run: (s, t, a) => s.cancelUpdate(t, a) }],
  ['SORT', { states: SELECTED, run: (s, t, a, u) => s.sort(t, a, u) }],
  ['THREAD', { states: SELECTED, run: (s, t, a, u) => s.thread(t, a, u) }],
  ['FETCH', { states: SELECTED, run: (s, t, a, u) => s.fetch(t, a, u) }],
  ['STORE', { states: SELECTED, run: (s, t, a, u) => s.store(t, a, u) }],
  ['COPY', { states: SELECTED, run: (s, t, a, u) => s.copy(t, a, u, false) }],
  ['MOVE', { states: SELECTED, run: (s, t, a, u) => s.copy(t, a, u, true) }],
]);

/** Commands that may follow UID. */
const UID_COMMANDS = new Set(['FETCH', 'STORE', 'COPY', 'MOVE', 'SEARCH', 'SORT', 'THREAD', 'EXPUNGE']);

/** Protocol errors that end in a tagged BAD (counted) or NO. */
class Bad extends Error {}
class No extends Error {
  constructor(
    readonly code: string | null,
    message: string,
  ) {
    super(message);
  }
}

let nextSessionId = 1;

export class Session {
  readonly id = nextSessionId++;
  readonly clientIp: string;
  private sock: net.Socket | tls.TLSSocket;
  private tls: boolean;
  private readonly reader: CommandReader;
  private state: State = 'notauth';
  private user: string | null = null;
  private mail: UserMail | null = null;
  private view: MailboxView | null = null;
  private unwatch: (() => void) | null = null;
  /** Set while IDLE waits: a change wakes it. */
  private idleWake: (() => void) | null = null;
  private condstore = false;
  /** NOTIFY (RFC 5465), once logged in. */
  private notifier: Notifier | null = null;
  /** NOTIFY's MessageNew (fetch-att ...) for the selected mailbox, and the UID it was sent up to. */
  private notifyFetch: FetchRequest | null = null;
  private notifyFetchedUpTo = 0;
  /** A command is being served (NOTIFY pushes wait for its completion). */
  private inCommand = false;
  /** A NOTIFY push between commands, in progress. */
  private pushing: Promise<void> | null = null;
  private pushAgain = false;
  /** ENABLE QRESYNC was given (RFC 7162). */
  private qresync = false;
  /** CONTEXT=SEARCH searches kept current (RFC 5267). */
  private readonly updates = new SearchUpdates();
  private corked = false;
  /** Text gathered while batching, not yet written. */
  private outText = '';
  private readonly structures = new Map<number, Part>();
  private loginFailures = 0;
  private badCommands = 0;
  private closing = false;
  private endReason = 'dropped';
  private readonly log: Logger;

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
    this.reader = new CommandReader(
      sock,
      { maxLine: () => deps.cfg().max_line_bytes, lineDeadlineMs: () => deps.cfg().command_timeout_s * 1000 },
      () => this.send('+ Ready for literal data\r\n'),
    );
    this.armIdleTimer();
  }

  /** run - greet, serve commands until LOGOUT or the connection ends, then clean up. */
  async run(): Promise<void> {
    connections.inc({ server: 'imapd' });
    try {
      this.send(`* OK [CAPABILITY ${this.capabilities()}] FancyMail IMAP server ready\r\n`);
      while (!this.closing) {
        const r = await this.reader.nextCommand((text, size, nonSync, before) => this.literalVerdict(text, size, nonSync, before));
        if (r === null) break;
        if (r.kind === 'timeout') {
          this.send('* BYE Command line took too long\r\n');
          this.hangup('line deadline');
          break;
        }
        if (r.kind === 'refused') {
          this.send(r.response + '\r\n');
          if (r.close) {
            this.hangup('refused input');
            break;
          }
          this.countBad();
          continue;
        }
        // A NOTIFY push in progress finishes first; while a command runs, none starts.
        if (this.pushing) await this.pushing;
        this.inCommand = true;
        try {
          await this.dispatch(r.parts);
        } finally {
          this.inCommand = false;
        }
      }
    } catch (err) {
      this.log.warn({ event: 'imapd.session_error', err: String(err) }, 'session failed');
      this.sock.destroy();
    } finally {
      this.cleanup();
      connections.dec({ server: 'imapd' });
    }
  }

  /** abort - end the session now (server shutdown). */
  abort(text: string): void {
    if (this.sock.destroyed) return;
    this.endReason = 'shutdown';
    this.send(`* BYE [UNAVAILABLE] ${text}\r\n`);
    this.closing = true;
    this.idleWake?.();
    this.flush();
    this.sock.end();
    const s = this.sock;
    setTimeout(() => s.destroy(), 500).unref();
  }

  /** literalVerdict - decide on a literal before any of its bytes is read; all of a command's literals count. */
  private literalVerdict(text: string, size: number, nonSync: boolean, before: number): LiteralVerdict {
    const cfg = this.deps.cfg();
    const m = /^(\S+) +(?:UID +)?(\S+)/i.exec(text);
    const tag = m ? m[1]! : '*';
    const isAppend = m?.[2]?.toUpperCase() === 'APPEND' && this.state !== 'notauth';
    const limit = this.state === 'notauth' ? PREAUTH_LITERAL_BYTES : isAppend ? cfg.max_message_size : cfg.max_literal_bytes;
    // APPEND: all messages and CATENATE texts of one command together within one message's
    // limit (MULTIAPPEND takes many small messages, not many large ones), plus small literals.
    const total = isAppend ? cfg.max_message_size + cfg.max_literal_bytes : limit;
    if (size <= limit && before + size <= total) return { ok: true };
    if (nonSync) return { ok: false, response: `* BYE [TOOBIG] Literal of ${size} octets is over the limit of ${limit}`, close: true };
    return { ok: false, response: `${tag} NO [TOOBIG] Literal of ${size} octets is over the limit of ${limit}`, close: false };
  }

  private async dispatch(parts: Array<string | Buffer>): Promise<void> {
    let tokens: Token[];
    try {
      tokens = tokenize(parts);
    } catch (err) {
      const tag = /^(\S+)/.exec(typeof parts[0] === 'string' ? parts[0] : '')?.[1];
      const safeTag = tag && /^[\x21-\x7e]+$/.test(tag) && !/[+(){%*"\\]/.test(tag) ? tag : '*';
      this.send(`${safeTag} BAD ${(err as Error).message}\r\n`);
      this.countBad();
      return;
    }
    const head = splitTagAndCommand(tokens);
    if (!head) {
      if (tokens.length) {
        this.send('* BAD Invalid tag\r\n');
        this.countBad();
      }
      return;
    }
    let { name } = head;
    const { tag } = head;
    let rest = head.rest;
    let uid = false;
    if (name === 'UID') {
      const sub = rest[0];
      if (sub?.t !== 'atom' || !UID_COMMANDS.has(sub.v.toUpperCase())) return this.bad(tag, 'Unknown UID command');
      uid = true;
      name = sub.v.toUpperCase();
      rest = rest.slice(1);
    }
    const cmd = COMMANDS.get(name);
    if (!cmd) return this.bad(tag, name ? 'Unknown command' : 'Missing command');
    if (!cmd.states.includes(this.state)) {
      return this.bad(tag, this.state === 'notauth' ? `${name} needs you to log in first` : this.state === 'auth' && cmd.states === SELECTED ? `${name} needs a selected mailbox` : `${name} is not allowed now`);
    }
    // "Output batching": a command's responses leave in as few writes as the socket allows.
    this.batch();
    try {
      await cmd.run(this, tag, new Args(rest), uid);
    } catch (err) {
      if (err instanceof Bad || err instanceof ParseError) return this.bad(tag, err.message);
      if (err instanceof BadNameError) return this.no(tag, 'CANNOT', err.message);
      if (err instanceof No) return this.no(tag, err.code, err.message);
      if (err instanceof StoreError) return this.no(tag, err.code, err.message);
      if (err instanceof BadCharsetError) return this.no(tag, 'BADCHARSET (UTF-8 US-ASCII)', 'Unsupported charset');
      if (err instanceof UnknownCteError) return this.no(tag, 'UNKNOWN-CTE', `Cannot decode ${err.message.slice(0, 40)}`);
      this.log.error({ event: 'imapd.command_failed', command: name, err: String(err) }, 'command failed');
      return this.no(tag, 'UNAVAILABLE', 'Mail store unavailable, try again later');
    } finally {
      this.flush();
    }
  }

  // ---- output ----

  /** send - write now, or while batching gather text into one string (one write per ~64 KiB, not per line). */
  private send(data: string | Buffer): void {
    if (this.sock.destroyed) return;
    if (!this.corked) {
      this.sock.write(data);
      return;
    }
    if (typeof data === 'string') {
      this.outText += data;
      if (this.outText.length >= 65536) this.writeText();
      return;
    }
    this.writeText();
    this.sock.write(data);
  }

  private writeText(): void {
    if (this.outText && !this.sock.destroyed) this.sock.write(this.outText);
    this.outText = '';
  }

  /** batch - hold writes (cork) until flush(): many small responses become one write. */
  private batch(): void {
    if (this.corked || this.sock.destroyed) return;
    this.sock.cork();
    this.corked = true;
  }

  /** flush - send what batch() held; needed before waiting for the client (IDLE, SASL, TLS). */
  private flush(): void {
    if (!this.corked) return;
    this.writeText();
    this.corked = false;
    this.sock.uncork();
  }

  /**
   * sendAll - pieces of one response; past OUT_HIGH_WATER buffered, flush and wait for the
   * socket (the only time it returns a promise).
   */
  private sendAll(pieces: Array<string | Buffer>): Promise<void> | undefined {
    let text = '';
    for (const p of pieces) {
      if (typeof p === 'string') {
        text += p;
        continue;
      }
      if (text) this.send(text);
      text = '';
      this.send(p);
    }
    if (text) this.send(text);
    if (this.sock.writableLength + this.outText.length > OUT_HIGH_WATER) {
      const corked = this.corked;
      this.flush();
      if (this.sock.writableNeedDrain) {
        return drained(this.sock).then(() => {
          if (corked) this.batch();
        });
      }
      if (corked) this.batch();
    }
    return undefined;
  }

  /** done - the tagged OK, after bringing the selected mailbox up to date. */
  private async done(tag: string, text: string, opts: { code?: string; allowExpunge?: boolean } = {}): Promise<void> {
    await this.catchUp(opts.allowExpunge ?? true);
    await this.syncUpdates();
    await this.sendNotifications(false);
    this.send(`${tag} OK ${opts.code ? `[${opts.code}] ` : ''}${text}\r\n`);
  }

  private no(tag: string, code: string | null, text: string): void {
    this.send(`${tag} NO ${code ? `[${code}] ` : ''}${text}\r\n`);
  }

  private bad(tag: string, text: string): void {
    this.send(`${tag} BAD ${text}\r\n`);
    this.countBad();
  }

  /** countBad - a protocol error by the client; too many of them and the connection is closed. */
  private countBad(): void {
    this.badCommands++;
    if (this.badCommands >= this.deps.cfg().max_bad_commands) {
      this.send('* BYE Too many bad commands\r\n');
      this.hangup('bad commands');
    }
  }

  /** hangup - close after what has been written (no further commands are read). */
  private hangup(reason: string): void {
    this.closing = true;
    this.endReason = reason;
    this.flush();
    this.sock.end();
    const s = this.sock;
    setTimeout(() => s.destroy(), 2000).unref();
  }

  /** armIdleTimer - autologout: short before login, at least 30 minutes after (RFC 9051 §5.4). */
  private armIdleTimer(): void {
    const cfg = this.deps.cfg();
    const seconds = this.state === 'notauth' ? cfg.login_timeout_s : cfg.idle_timeout_s;
    this.sock.setTimeout(seconds * 1000, () => {
      this.send('* BYE Autologout; idle for too long\r\n');
      this.endReason = 'idle timeout';
      this.closing = true;
      this.idleWake?.();
      this.flush();
      this.sock.end();
      const s = this.sock;
      setTimeout(() => s.destroy(), 1000).unref();
    });
  }

  private plaintextAllowed(): boolean {
    const cfg = this.deps.cfg();
    return this.tls || cfg.allow_plaintext_auth || (cfg.allow_plaintext_loopback && isLoopbackIp(this.clientIp));
  }

  private capabilities(): string {
    const caps = ['IMAP4rev1', 'SASL-IR', 'ID', 'ENABLE', 'IDLE', 'LITERAL+'];
    if (this.state === 'notauth') {
      if (!this.tls) caps.push('STARTTLS');
      caps.push(this.plaintextAllowed() ? 'AUTH=PLAIN' : 'LOGINDISABLED');
    } else {
      caps.push(
        'NAMESPACE',
        'UIDPLUS',
        'MOVE',
        'UNSELECT',
        'CHILDREN',
        'LIST-EXTENDED',
        'LIST-STATUS',
        'SPECIAL-USE',
        'ESEARCH',
        'CONTEXT=SEARCH',
        'MULTIAPPEND',
        'CATENATE',
        'BINARY',
        'SORT',
        'SORT=DISPLAY',
        'ESORT',
        'THREAD=REFERENCES',
        'THREAD=ORDEREDSUBJECT',
        'CONDSTORE',
        'QRESYNC',
        'NOTIFY',
        'STATUS=SIZE',
        `APPENDLIMIT=${this.deps.cfg().max_message_size}`,
      );
    }
    return caps.join(' ');
  }

  // ---- any state ----

  capability(tag: string, args: Args): Promise<void> {
    args.end();
    this.send(`* CAPABILITY ${this.capabilities()}\r\n`);
    return this.done(tag, 'CAPABILITY completed');
  }

  async noop(tag: string, args: Args): Promise<void> {
    args.end();
    if (this.view) this.view.dirty = true;
    await this.done(tag, 'NOOP completed');
  }

  logout(tag: string, args: Args): void {
    args.end();
    this.send('* BYE FancyMail IMAP server signing off\r\n');
    this.send(`${tag} OK LOGOUT completed\r\n`);
    this.state = 'logout';
    this.hangup('logout');
  }

  idCmd(tag: string, args: Args): Promise<void> {
    const t = args.next('ID parameters');
    if (t.t === 'list') {
      if (t.v.length > 60) throw new Bad('Too many ID fields');
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < t.v.length; i += 2) {
        const k = t.v[i]!;
        const v = t.v[i + 1]!;
        if (k.t !== 'list' && v.t !== 'list') fields[k.v.slice(0, 64)] = v.v.slice(0, 256);
      }
      this.log.info({ event: 'imapd.client_id', id: fields }, 'client identified');
    } else if (!(t.t === 'atom' && t.v.toUpperCase() === 'NIL')) {
      throw new Bad('Expected a list or NIL');
    }
    args.end();
    this.send(`* ID ("name" "FancyMail" "version" ${istring(VERSION)})\r\n`);
    return this.done(tag, 'ID completed');
  }

  // ---- not authenticated ----

  starttls(tag: string, args: Args): void {
    args.end();
    if (this.tls) throw new Bad('TLS is already active');
    const raw = this.sock as net.Socket;
    this.send(`${tag} OK Begin TLS negotiation now\r\n`);
    this.flush();
    // Synchronously from here on: no plaintext byte after the command reaches a handler.
    this.reader.detach();
    raw.setTimeout(0);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.deps.secureContext });
    secure.on('error', (err) => this.log.debug({ event: 'imapd.tls_error', err: String(err) }, 'TLS failed'));
    this.sock = secure;
    this.tls = true;
    this.reader.reattach(secure);
    this.armIdleTimer();
  }

  async loginCmd(tag: string, args: Args): Promise<void> {
    const name = args.astring('user name');
    const password = args.astring('password');
    args.end();
    if (!this.plaintextAllowed()) return this.no(tag, 'PRIVACYREQUIRED', 'Plaintext authentication disallowed without TLS; use STARTTLS');
    await this.login(tag, name, password);
  }

  async authenticate(tag: string, args: Args): Promise<void> {
    const mech = args.atom('mechanism').toUpperCase();
    const initial = args.done ? null : args.atom('initial response');
    args.end();
    if (mech !== 'PLAIN') return this.no(tag, 'CANNOT', 'Unsupported authentication mechanism');
    if (!this.plaintextAllowed()) return this.no(tag, 'PRIVACYREQUIRED', 'Plaintext authentication disallowed without TLS; use STARTTLS');
    let response = initial;
    if (response === null) {
      this.send('+ \r\n');
      this.flush();
      const r = await this.reader.readLine(PREAUTH_LITERAL_BYTES);
      if (r === null) return;
      if (r.kind !== 'line') throw new Bad('Authentication response too long or too slow');
      response = r.line.trim();
      if (response === '*') throw new Bad('Authentication cancelled');
    }
    const creds = decodePlain(response === '=' ? '' : response);
    if (!creds) return this.loginFailed(tag, '(malformed)');
    await this.login(tag, creds.user, creds.password);
  }

  private async login(tag: string, name: string, password: string): Promise<void> {
    let result: AuthResult;
    try {
      result = await this.deps.authenticate(name, password, this.clientIp);
    } catch (err) {
      this.log.error({ event: 'imapd.authd_unavailable', err: String(err) }, 'authd unavailable');
      return this.no(tag, 'UNAVAILABLE', 'Authentication service unavailable, try again later');
    }
    if (!result.ok) {
      if (result.temporary) return this.no(tag, 'UNAVAILABLE', 'Authentication service unavailable, try again later');
      return this.loginFailed(tag, name);
    }
    try {
      this.mail = await this.deps.store.open(result.user);
    } catch (err) {
      this.log.error({ event: 'imapd.store_unavailable', user: result.user, err: String(err) }, 'mailbox unavailable');
      return this.no(tag, 'UNAVAILABLE', 'Mailbox unavailable, try again later');
    }
    this.user = result.user;
    const mail = this.mail;
    this.notifier = new Notifier({
      user: result.user,
      sessionId: this.id,
      mail,
      wake: () => this.notifyWake(),
      selected: () => this.view?.name ?? null,
      decode: (wire) => {
        try {
          return checkName(fromWire(wire), mail.delimiter);
        } catch {
          return null;
        }
      },
    });
    this.state = 'auth';
    this.armIdleTimer();
    this.log.info({ event: 'imapd.login', user: this.user, tls: this.tls }, 'logged in');
    this.send(`${tag} OK [CAPABILITY ${this.capabilities()}] Logged in\r\n`);
  }

  private async loginFailed(tag: string, name: string): Promise<void> {
    this.loginFailures++;
    this.log.info({ event: 'imapd.auth_failed', user: name, failures: this.loginFailures }, 'login failed');
    const cfg = this.deps.cfg();
    await new Promise((r) => setTimeout(r, cfg.failed_login_delay_ms));
    this.no(tag, 'AUTHENTICATIONFAILED', 'Authentication failed');
    if (this.loginFailures >= cfg.max_login_failures) {
      this.send('* BYE Too many failed logins\r\n');
      this.hangup('login failures');
    }
  }

  // ---- authenticated ----

  private name(raw: string): string {
    return checkName(fromWire(raw), this.mail!.delimiter);
  }

  enable(tag: string, args: Args): Promise<void> {
    const enabled: string[] = [];
    while (!args.done) {
      const cap = args.atom('capability').toUpperCase();
      if (cap === 'CONDSTORE' && !enabled.includes(cap)) {
        this.condstore = true;
        enabled.push(cap);
      } else if (cap === 'QRESYNC' && !enabled.includes(cap)) {
        // QRESYNC includes CONDSTORE (RFC 7162 §3.2.3).
        this.qresync = true;
        this.condstore = true;
        if (this.view) this.view.vanished = true;
        enabled.push(cap);
      }
    }
    this.send(`* ENABLED${enabled.map((c) => ' ' + c).join('')}\r\n`);
    return this.done(tag, 'ENABLE completed');
  }

  namespace(tag: string, args: Args): Promise<void> {
    args.end();
    this.send(`* NAMESPACE (("" ${istring(this.mail!.delimiter)})) NIL NIL\r\n`);
    return this.done(tag, 'NAMESPACE completed');
  }

  /** list - LIST (with RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154) and LSUB. */
  async list(tag: string, args: Args, lsub: boolean): Promise<void> {
    const selection = lsub ? [] : atomsOf(args.optionalList() ?? [], 'selection option').map((x) => x.toUpperCase());
    const reference = args.astring('reference');
    const patTok = args.next('pattern');
    const patterns = patTok.t === 'list' ? patTok.v.map((t) => (t.t === 'list' ? '' : t.v)) : [patTok.v];
    const returns: string[] = [];
    let statusItems: string[] | null = null;
    if (!lsub && !args.done) {
      if (args.atom('RETURN').toUpperCase() !== 'RETURN') throw new Bad('Expected RETURN');
      const opts = args.list('return options');
      for (let i = 0; i < opts.length; i++) {
        const o = opts[i]!;
        if (o.t !== 'atom') throw new Bad('Bad return option');
        const up = o.v.toUpperCase();
        if (up === 'STATUS') {
          const next = opts[++i];
          if (next?.t !== 'list') throw new Bad('STATUS needs a list');
          statusItems = atomsOf(next.v, 'status item').map((x) => x.toUpperCase());
        } else {
          returns.push(up);
        }
      }
    }
    args.end();
    for (const s of selection) if (!['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE'].includes(s)) throw new Bad(`Unknown selection option ${s}`);
    // RECURSIVEMATCH only qualifies another option (RFC 5258 §3.1).
    if (selection.includes('RECURSIVEMATCH') && !selection.some((x) => x === 'SUBSCRIBED' || x === 'SPECIAL-USE')) throw new Bad('RECURSIVEMATCH needs another selection option');
    for (const r of returns) if (!['SUBSCRIBED', 'CHILDREN', 'SPECIAL-USE'].includes(r)) throw new Bad(`Unknown return option ${r}`);
    const delim = this.mail!.delimiter;
    if (patterns.length === 1 && patterns[0] === '' && !selection.length) {
      // The hierarchy delimiter and root (RFC 9051 §6.3.9).
      this.send(`* ${lsub ? 'LSUB' : 'LIST'} (\\Noselect) ${istring(delim)} ""\r\n`);
      return this.done(tag, `${lsub ? 'LSUB' : 'LIST'} completed`);
    }
    const folders = await this.mail!.folders();
    const existing = folders.filter((f) => f.exists);
    const names = new Set(existing.map((f) => f.name));
    // Parents that do not exist themselves show as \Noselect (RFC 9051 §7.3.1).
    const parents = new Set<string>();
    for (const n of names) {
      const levels = n.split(delim);
      for (let i = 1; i < levels.length; i++) {
        const p = levels.slice(0, i).join(delim);
        if (!names.has(p)) parents.add(p);
      }
    }
    const all: FolderInfo[] = [...folders, ...[...parents].map((name) => ({ name, subscribed: false, exists: false, parent: true }))];
    const matchers = patterns.map((p) => patternMatcher(reference + p, delim));
    const matchesAny = (name: string): boolean => matchers.some((m) => m(toWire(name)));
    const subscribedOnly = lsub || selection.includes('SUBSCRIBED');
    const recursive = !lsub && selection.includes('RECURSIVEMATCH');
    // Names with a subscribed descendant no pattern reaches: LSUB shows them as \Noselect
    // (RFC 3501 §6.3.9, "foo" for a subscribed "foo/bar" and pattern "%"), LIST (SUBSCRIBED
    // RECURSIVEMATCH) with CHILDINFO (RFC 5258 §3.5).
    const withSubscribedChild = new Set<string>();
    if (lsub || (subscribedOnly && recursive)) {
      for (const f of folders) {
        if (!f.subscribed || matchesAny(f.name)) continue;
        const levels = f.name.split(delim);
        for (let i = 1; i < levels.length; i++) withSubscribedChild.add(levels.slice(0, i).join(delim));
      }
      const known = new Set(all.map((f) => f.name));
      for (const name of withSubscribedChild) if (!known.has(name)) all.push({ name, subscribed: false, exists: false });
    }
    all.sort((a, b) => (a.name === 'INBOX' ? -1 : b.name === 'INBOX' ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const specialOnly = selection.includes('SPECIAL-USE');
    const lines: string[] = [];
    const matched: FolderInfo[] = [];
    const seen = new Set<string>();
    for (const f of all) {
      const wire = toWire(f.name);
      if (seen.has(f.name) || !matchers.some((m) => m(wire))) continue;
      const isParent = (f as { parent?: boolean }).parent === true;
      const childInfo = withSubscribedChild.has(f.name);
      if (subscribedOnly ? !f.subscribed && !childInfo : !f.exists && !isParent) continue;
      if (specialOnly && !specialUse(f.name)) continue;
      seen.add(f.name);
      const attrs: string[] = [];
      const hasChildren = [...names].some((n) => n.startsWith(f.name + delim));
      if (lsub && !f.subscribed) attrs.push('\\Noselect');
      else if (!f.exists) attrs.push(isParent ? '\\Noselect' : '\\NonExistent');
      attrs.push(hasChildren ? '\\HasChildren' : '\\HasNoChildren');
      const su = specialUse(f.name);
      if (su) attrs.push(su);
      if (!lsub && f.subscribed && (subscribedOnly || returns.includes('SUBSCRIBED'))) attrs.push('\\Subscribed');
      const extended = recursive && childInfo ? ' ("CHILDINFO" ("SUBSCRIBED"))' : '';
      lines.push(`* ${lsub ? 'LSUB' : 'LIST'} (${attrs.join(' ')}) ${istring(delim)} ${istring(wire)}${extended}\r\n`);
      matched.push(f);
    }
    for (let i = 0; i < lines.length; i++) {
      this.send(lines[i]!);
      if (statusItems && matched[i]!.exists) {
        try {
          this.send(await this.statusLine(matched[i]!.name, statusItems));
        } catch {
          // A folder gone meanwhile just has no STATUS (RFC 5819 §2).
        }
      }
    }
    await this.done(tag, `${lsub ? 'LSUB' : 'LIST'} completed`);
  }

  async create(tag: string, args: Args): Promise<void> {
    const raw = args.astring('mailbox name');
    args.end();
    const delim = this.mail!.delimiter;
    // A trailing delimiter only says the client means to create children (RFC 9051 §6.3.4).
    const name = this.name(raw.endsWith(delim) ? raw.slice(0, -delim.length) : raw);
    if (name === 'INBOX') throw new No('ALREADYEXISTS', 'INBOX always exists');
    await this.mail!.create(name);
    emitMailboxEvent(this.user!, this.id, { kind: 'created', name });
    await this.done(tag, 'CREATE completed');
  }

  async deleteCmd(tag: string, args: Args): Promise<void> {
    const name = this.name(args.astring('mailbox name'));
    args.end();
    if (name === 'INBOX') throw new No('CANNOT', 'INBOX cannot be deleted');
    if (this.view?.name === name) throw new No('INUSE', 'Unselect the mailbox before deleting it');
    await this.mail!.remove(name);
    emitMailboxEvent(this.user!, this.id, { kind: 'deleted', name });
    await this.done(tag, 'DELETE completed');
  }

  async rename(tag: string, args: Args): Promise<void> {
    const from = this.name(args.astring('mailbox name'));
    const to = this.name(args.astring('new mailbox name'));
    args.end();
    if (to === 'INBOX') throw new No('ALREADYEXISTS', 'INBOX always exists');
    await this.mail!.rename(from, to);
    emitMailboxEvent(this.user!, this.id, { kind: 'renamed', name: to, oldName: from });
    await this.done(tag, 'RENAME completed');
  }

  async subscribe(tag: string, args: Args, on: boolean): Promise<void> {
    const name = this.name(args.astring('mailbox name'));
    args.end();
    await this.mail!.subscribe(name, on);
    emitMailboxEvent(this.user!, this.id, { kind: 'subscription', name, subscribed: on });
    await this.done(tag, `${on ? 'SUBSCRIBE' : 'UNSUBSCRIBE'} completed`);
  }

  /** select - SELECT / EXAMINE, with the CONDSTORE parameter. */
  async select(tag: string, args: Args, readOnly: boolean): Promise<void> {
    const name = this.name(args.astring('mailbox name'));
    const params = args.optionalList();
    args.end();
    let condstore = false;
    let resync: QresyncParams | null = null;
    const plist = new Args(params ?? []);
    while (!plist.done) {
      const p = plist.atom('SELECT parameter').toUpperCase();
      if (p === 'CONDSTORE') condstore = true;
      else if (p === 'QRESYNC') resync = parseQresync(plist.list('QRESYNC parameters'));
      else throw new Bad('Unknown SELECT parameter');
    }
    if (resync && !this.qresync) throw new Bad('QRESYNC is not enabled');
    const hadSelected = this.view !== null;
    this.deselect();
    this.state = 'auth';
    if (hadSelected) this.send('* OK [CLOSED] Previous mailbox closed\r\n');
    const state = await this.mail!.state(name);
    if (condstore) this.condstore = true;
    const view = new MailboxView(name, readOnly, state, `${this.user}\0${name}\0${state.uidvalidity}`);
    view.beforeRemove = (uids) => this.updates.removing(uids, (u) => view.seqOf(u));
    view.vanished = this.qresync;
    this.view = view;
    this.state = 'selected';
    this.unwatch = this.mail!.watch(name, () => {
      view.dirty = true;
      if (this.notifier?.selectedGroup()) this.notifyWake();
      else this.idleWake?.();
    });
    this.notifyFetchedUpTo = view.maxUid;
    const firstUnseen = view.messages.findIndex((m) => !hasFlag(m.flags, '\\Seen'));
    let out = view.flagsLines();
    out += `* ${view.exists} EXISTS\r\n* ${view.recent.size} RECENT\r\n`;
    if (firstUnseen >= 0) out += `* OK [UNSEEN ${firstUnseen + 1}] First unseen\r\n`;
    out += `* OK [UIDVALIDITY ${view.uidvalidity}] UIDs valid\r\n`;
    out += `* OK [UIDNEXT ${view.uidnext}] Predicted next UID\r\n`;
    out += `* OK [HIGHESTMODSEQ ${view.highestModseq}] Highest\r\n`;
    this.send(out);
    this.structures.clear();
    if (resync && resync.uidvalidity === view.uidvalidity) await this.resyncSelect(view, resync);
    await this.done(tag, `${readOnly ? 'EXAMINE' : 'SELECT'} completed`, { code: readOnly ? 'READ-ONLY' : 'READ-WRITE' });
  }

  /**
   * resyncSelect - SELECT's QRESYNC (RFC 7162 §3.2.5): what the client missed since its
   * mod-sequence: VANISHED (EARLIER) for the expunged among its known UIDs, then FETCH for
   * every message changed since. Known sequence/UID pairs are not needed: expunges are listed.
   */
  private async resyncSelect(view: MailboxView, r: QresyncParams): Promise<void> {
    const known = new SeqMatcher(r.knownUids ?? [[1, Infinity]], Math.max(view.maxUid, view.uidnext - 1));
    const vanished = await this.vanishedSince(view, r.modseq, known);
    if (vanished) this.send(`* VANISHED (EARLIER) ${vanished}\r\n`);
    const lines: string[] = [];
    for (let i = 0; i < view.messages.length; i++) {
      const m = view.messages[i]!;
      if (m.modseq > r.modseq) lines.push(`* ${i + 1} FETCH (UID ${m.uid} FLAGS ${flagList(view.flagsOf(m))} MODSEQ (${m.modseq}))\r\n`);
    }
    if (lines.length) await this.sendAll(lines);
  }

  /** vanishedSince - UIDs in `set` expunged since `modseq` and not in the view (a set string, maybe ''). */
  private async vanishedSince(view: MailboxView, modseq: number, set: SeqMatcher): Promise<string> {
    const changes = await this.mail!.changes(view.name, modseq);
    if (changes.kind === 'delta') {
      const uids = [...new Set(changes.expunged)].filter((u) => set.has(u) && !view.seqOf(u)).sort((a, b) => a - b);
      return formatSet(uids);
    }
    // The store no longer knows every expunge: every UID of the set below UIDNEXT not here.
    return set.missing(view.messages.map((m) => m.uid), Math.max(view.uidnext, changes.state.uidnext) - 1);
  }

  private deselect(): void {
    this.unwatch?.();
    this.unwatch = null;
    this.updates.clear();
    this.view = null;
    this.structures.clear();
  }

  async status(tag: string, args: Args): Promise<void> {
    const name = this.name(args.astring('mailbox name'));
    const items = atomsOf(args.list('status items'), 'status item').map((x) => x.toUpperCase());
    args.end();
    if (!items.length) throw new Bad('Empty status item list');
    this.send(await this.statusLine(name, items));
    await this.done(tag, 'STATUS completed');
  }

  private async statusLine(name: string, items: string[]): Promise<string> {
    const st = await this.mail!.status(name);
    const values: string[] = [];
    for (const it of items) {
      const v: Record<string, number> = {
        MESSAGES: st.messages,
        UIDNEXT: st.uidnext,
        UIDVALIDITY: st.uidvalidity,
        UNSEEN: st.unseen,
        RECENT: recentCount(`${this.user}\0${name}\0${st.uidvalidity}`, st.messages, st.uidnext),
        SIZE: st.size,
        HIGHESTMODSEQ: st.highestModseq,
      };
      if (!(it in v)) throw new Bad(`Unknown status item ${it}`);
      values.push(`${it} ${v[it]}`);
    }
    return `* STATUS ${istring(toWire(name))} (${values.join(' ')})\r\n`;
  }

  /** append - APPEND with MULTIAPPEND, CATENATE and literal8; all messages are stored or none. */
  async append(tag: string, args: Args): Promise<void> {
    const name = this.name(args.astring('mailbox name'));
    const msgs = parseAppendMessages(args).map((m) => {
      const flags = normalizeFlags(m.flags);
      if (flags.some((f) => f.toLowerCase() === '\\recent')) throw new Bad('\\Recent cannot be set');
      let date: number | null = null;
      if (m.date !== null) {
        date = parseDateTime(m.date);
        if (date === null) throw new Bad('Bad date-time');
      }
      return { ...m, flags, date };
    });
    // A missing mailbox is TRYCREATE, whatever else is wrong (RFC 4469 §5).
    try {
      await this.mail!.status(name);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NONEXISTENT') throw new No('TRYCREATE', 'No such mailbox');
      throw err;
    }
    const datas: Buffer[] = [];
    for (const m of msgs) {
      const pieces: Buffer[] = [];
      for (const part of m.parts) pieces.push('text' in part ? part.text : await this.urlData(part.url));
      let data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
      if (m.binary) data = base64Parts(data, leafParts(await parseStructure(data)));
      if (data.length === 0) throw new No(null, 'Empty message');
      if (data.length > this.deps.cfg().max_message_size) throw new No('TOOBIG', 'Message too large');
      datas.push(data);
    }
    const uids: number[] = [];
    let uidvalidity = 0;
    try {
      for (let i = 0; i < msgs.length; i++) {
        const r = await this.mail!.append(name, datas[i]!, msgs[i]!.flags, msgs[i]!.date);
        uids.push(r.uid);
        uidvalidity = r.uidvalidity;
        this.log.info({ event: 'imapd.append', user: this.user, mailbox: name, uid: r.uid, size: datas[i]!.length }, 'message appended');
      }
    } catch (err) {
      // MULTIAPPEND is all or nothing (RFC 3502 §6.3.11).
      if (uids.length) await this.mail!.expunge(name, uids).catch(() => {});
      if (err instanceof StoreError && err.code === 'NONEXISTENT') throw new No('TRYCREATE', 'No such mailbox');
      throw err;
    }
    if (this.view?.name === name) this.view.dirty = true;
    await this.done(tag, 'APPEND completed', { code: `APPENDUID ${uidvalidity} ${formatSet(uids)}` });
  }

  /** urlData - the bytes a CATENATE URL names, from the user's own mail, or NO [BADURL]. */
  private async urlData(url: string): Promise<Buffer> {
    const bad = (why: string): No => new No(`BADURL ${istring(url.slice(0, 200))}`, why);
    let u;
    try {
      u = parseImapUrl(url, this.user!);
    } catch (err) {
      if (err instanceof BadUrlError) throw bad(err.message);
      throw err;
    }
    let raw: Buffer | null;
    try {
      const box = checkName(u.mailbox, this.mail!.delimiter);
      const st = await this.mail!.status(box);
      if (u.uidvalidity !== null && u.uidvalidity !== st.uidvalidity) throw bad('UIDVALIDITY does not match');
      raw = await this.mail!.fetch(box, u.uid);
    } catch (err) {
      if (err instanceof No) throw err;
      if (err instanceof BadNameError || err instanceof StoreError) throw bad('No such mailbox');
      throw err;
    }
    if (!raw) throw bad('No such message');
    let data: Buffer;
    try {
      const section = parseSection(u.section);
      data = sectionBytes(raw, needsStructure(section) ? await parseStructure(raw) : null, section);
    } catch (err) {
      if (err instanceof ParseError) throw bad('Bad section');
      throw err;
    }
    if (u.partial) {
      const [origin, len] = u.partial;
      data = data.subarray(Math.min(origin, data.length), len === null ? data.length : Math.min(origin + len, data.length));
    }
    return data;
  }

  /** idle - RFC 2177: changes are pushed as they happen until the client sends DONE. */
  async idle(tag: string, args: Args): Promise<void> {
    args.end();
    this.send('+ idling\r\n');
    this.flush();
    const line = this.reader.readLine(64);
    let ended = false;
    let result: Awaited<typeof line> | undefined;
    void line.then((r) => {
      result = r;
      ended = true;
      this.idleWake?.();
    });
    while (!ended && !this.closing) {
      await this.catchUp(true);
      await this.syncUpdates();
      await this.sendNotifications(false);
      this.flush();
      if (ended || this.closing) break;
      await new Promise<void>((resolve) => (this.idleWake = resolve));
      this.idleWake = null;
    }
    if (this.closing || !result) return;
    if (result.kind !== 'line' || result.line.trim().toUpperCase() !== 'DONE') throw new Bad('Expected DONE');
    await this.done(tag, 'IDLE terminated');
  }

  /** notify - NOTIFY SET / NONE (RFC 5465). */
  async notify(tag: string, args: Args): Promise<void> {
    const tokens: Token[] = [];
    while (!args.done) tokens.push(args.next('argument'));
    let cmd;
    try {
      cmd = parseNotify(tokens);
    } catch (err) {
      if (err instanceof BadEventError) throw new No(`BADEVENT (${SUPPORTED_EVENTS.join(' ')})`, 'Event not supported');
      throw err;
    }
    const n = this.notifier!;
    if (cmd.kind === 'none') {
      n.stop();
      this.notifyFetch = null;
      return this.done(tag, 'NOTIFY completed');
    }
    const sel = cmd.groups.find((g) => g.filter === 'SELECTED' || g.filter === 'SELECTED-DELAYED');
    const fetch = sel?.fetch ? parseFetchItems(sel.fetch) : null;
    let out: string;
    try {
      out = await n.set(cmd.groups, cmd.status);
    } catch (err) {
      if (err instanceof NotifyOverflowError) throw new No('NOTIFICATIONOVERFLOW', err.message);
      throw err;
    }
    this.notifyFetch = fetch;
    this.notifyFetchedUpTo = this.view?.maxUid ?? 0;
    if (out) this.send(out);
    await this.done(tag, 'NOTIFY completed');
  }

  /** notifyWake - something NOTIFY reports changed: IDLE picks it up, or push it now if no command runs. */
  private notifyWake(): void {
    if (this.idleWake) return this.idleWake();
    if (this.inCommand || this.closing) return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    this.pushing = (async () => {
      do {
        this.pushAgain = false;
        this.batch();
        try {
          await this.sendNotifications(true);
        } catch (err) {
          this.log.warn({ event: 'imapd.notify_failed', err: String(err) }, 'cannot send notifications');
        } finally {
          this.flush();
        }
      } while (this.pushAgain && !this.inCommand && !this.closing);
    })().finally(() => (this.pushing = null));
  }

  /**
   * sendNotifications - NOTIFY's output: between commands, the selected mailbox's changes when
   * a SELECTED filter asks (expunges held for SELECTED-DELAYED); MessageNew's FETCH; then
   * STATUS and LIST responses for other mailboxes.
   */
  private async sendNotifications(between: boolean): Promise<void> {
    const n = this.notifier;
    if (!n?.active) return;
    const sel = n.selectedGroup();
    if (between && sel && this.view) {
      await this.catchUp(sel.filter === 'SELECTED');
      await this.syncUpdates();
    }
    await this.sendNewMessageFetches();
    const out = await n.collect();
    if (out) this.send(out);
  }

  /** sendNewMessageFetches - NOTIFY SET (SELECTED (MessageNew (fetch-att ...))): FETCH for new messages. */
  private async sendNewMessageFetches(): Promise<void> {
    const view = this.view;
    const req = this.notifyFetch;
    if (!view || !req) return;
    const fresh = view.messages.filter((m) => m.uid > this.notifyFetchedUpTo);
    this.notifyFetchedUpTo = Math.max(this.notifyFetchedUpTo, view.maxUid);
    await this.withRaw(fresh, req.needsRaw, (m, _i, raw) => {
      const seq = view.seqOf(m.uid);
      if (!seq || (req.needsRaw && !raw)) return;
      const meta = { ...m, flags: view.flagsOf(m) };
      const opts = { uid: true, modseq: this.condstore };
      return this.sendFetch(req, seq, meta, raw, opts);
    });
  }

  // ---- selected ----

  async close(tag: string, args: Args, expunge: boolean): Promise<void> {
    args.end();
    const view = this.view!;
    if (expunge && !view.readOnly) {
      const deleted = view.messages.filter((m) => hasFlag(m.flags, '\\Deleted')).map((m) => m.uid);
      if (deleted.length) await this.mail!.expunge(view.name, deleted);
    }
    this.deselect();
    this.state = 'auth';
    this.send(`${tag} OK ${expunge ? 'CLOSE' : 'UNSELECT'} completed\r\n`);
  }

  async expunge(tag: string, args: Args, uid: boolean): Promise<void> {
    const set = uid ? args.atom('UID set') : null;
    args.end();
    const view = this.view!;
    if (view.readOnly) throw new No('READ-ONLY', 'Mailbox is read-only');
    // Flags set by other sessions count too: catch up before choosing.
    view.dirty = true;
    await this.catchUp(true);
    const candidates = set === null ? view.messages : this.resolve(set, true);
    const deleted = candidates.filter((m) => hasFlag(m.flags, '\\Deleted')).map((m) => m.uid);
    const removed = deleted.length ? await this.mail!.expunge(view.name, deleted) : [];
    this.send(view.removeUids(removed).join(''));
    if (!this.qresync) return this.done(tag, 'EXPUNGE completed');
    // With QRESYNC the OK carries the mod-sequence the expunge made (RFC 7162 §3.2.10).
    if (removed.length) view.dirty = true;
    await this.catchUp(true);
    await this.done(tag, 'EXPUNGE completed', { code: `HIGHESTMODSEQ ${view.highestModseq}` });
  }

  /** resolve - the messages of a sequence set (numbers or UIDs) in sequence order. */
  private resolve(set: string, uid: boolean): MessageMeta[] {
    const view = this.view!;
    const ranges = parseSequenceSet(set);
    if (!uid) {
      for (const [a, b] of ranges) {
        if ((a !== Infinity && a > view.exists) || (b !== Infinity && b > view.exists)) throw new Bad('Invalid message number');
      }
      const m = new SeqMatcher(ranges, view.exists);
      const lo = Math.max(1, m.min);
      const hi = Math.min(view.exists, m.max);
      const out: MessageMeta[] = [];
      for (let s = lo; s <= hi; s++) if (m.has(s)) out.push(view.messages[s - 1]!);
      return out;
    }
    // `*` is the highest UID in use; with n:* it means at least the last message (RFC 9051 §9).
    const m = new SeqMatcher(ranges, view.maxUid);
    return view.messages.filter((x) => m.has(x.uid));
  }

  async search(tag: string, args: Args, uid: boolean): Promise<void> {
    const prog = parseSearch(args);
    const ret = prog.returns;
    if (ret?.options.includes('SAVE')) throw new Bad('SEARCHRES is not supported');
    const { hits, seqs } = await this.matching(prog, null);
    const nums = uid ? hits.map((m) => m.uid) : seqs;
    if (ret) {
      this.send(esearchLine(tag, uid, ret, hits, nums, prog.usesModseq, false));
      if (ret.options.includes('UPDATE')) {
        // CONTEXT=SEARCH (RFC 5267 §4.2): the result is kept and kept current.
        if (this.updates.size >= MAX_UPDATE_CONTEXTS) this.send(`* NO [NOUPDATE ${istring(tag)}] Too many updating searches\r\n`);
        else this.updates.add(tag, uid, prog, hits, this.view!.messages);
      }
    } else {
      const mod = prog.usesModseq && nums.length ? ` (MODSEQ ${highestModseqOf(hits)})` : '';
      this.send(`* SEARCH${nums.map((n) => ' ' + n).join('')}${mod}\r\n`);
    }
    await this.done(tag, 'SEARCH completed', { allowExpunge: uid });
  }

  /** cancelUpdate - CANCELUPDATE "tag" ... (RFC 5267 §4.3). */
  async cancelUpdate(tag: string, args: Args): Promise<void> {
    const tags: string[] = [];
    while (!args.done) tags.push(args.astring('search tag'));
    if (!tags.length) throw new Bad('Missing search tag');
    if (!this.updates.cancel(tags)) throw new No(null, 'Unknown tag');
    await this.done(tag, 'CANCELUPDATE completed');
  }

  /** syncUpdates - ADDTO/REMOVEFROM for updating searches whose results changed. */
  private async syncUpdates(): Promise<void> {
    const view = this.view;
    if (!view || !this.updates.size) return;
    const lines = await this.updates.refresh(view.messages, (u) => view.seqOf(u), async (prog, msgs) => {
      const out = new Set<number>();
      const cache = new Map();
      const ctx = { maxSeq: view.exists, maxUid: view.maxUid };
      await this.withRaw(msgs, prog.needsRaw, (m, _i, raw) => {
        if (matches(prog.key, { seq: view.seqOf(m.uid), meta: m, raw, recent: view.recent.has(m.uid), ...ctx }, cache)) out.add(m.uid);
      });
      return out;
    });
    if (lines) this.send(lines);
  }

  /** sort - SORT (RFC 5256) with SORT=DISPLAY (RFC 5957) keys and ESORT's RETURN (RFC 5267). */
  async sort(tag: string, args: Args, uid: boolean): Promise<void> {
    const returns = parseReturn(args);
    if (returns?.options.includes('SAVE')) throw new Bad('SEARCHRES is not supported');
    // CONTEXT=SORT is not offered.
    if (returns?.partial || returns?.options.includes('UPDATE')) throw new Bad('PARTIAL and UPDATE are for SEARCH only');
    const keys = parseSortCriteria(args.list('sort criteria'));
    checkCharset(args.astring('charset'));
    const prog = parseSearchKeys(args);
    const needsHeader = keys.some((k) => k.key !== 'ARRIVAL' && k.key !== 'SIZE');
    const { facts } = await this.matching(prog, needsHeader ? 'header' : 'meta');
    facts.sort(compareFacts(keys));
    const hits = facts.map((f) => this.view!.messages[f.seq - 1]!);
    const nums = facts.map((f) => (uid ? f.uid : f.seq));
    if (returns) this.send(esearchLine(tag, uid, returns, hits, nums, prog.usesModseq, true));
    else this.send(`* SORT${nums.map((n) => ' ' + n).join('')}\r\n`);
    await this.done(tag, 'SORT completed', { allowExpunge: uid });
  }

  /** thread - THREAD REFERENCES / ORDEREDSUBJECT (RFC 5256). */
  async thread(tag: string, args: Args, uid: boolean): Promise<void> {
    const algorithm = args.atom('threading algorithm').toUpperCase();
    if (algorithm !== 'REFERENCES' && algorithm !== 'ORDEREDSUBJECT') throw new Bad('Unknown threading algorithm');
    checkCharset(args.astring('charset'));
    const { facts } = await this.matching(parseSearchKeys(args), 'header');
    const threads = threadResponse(algorithm, facts, uid);
    this.send(`* THREAD${threads ? ' ' + threads : ''}\r\n`);
    await this.done(tag, 'THREAD completed', { allowExpunge: uid });
  }

  /**
   * matching - the messages a search selects, in message-number order, with their sort and
   * thread facts when asked: from metadata only, or from the header too (the bytes are read).
   */
  private async matching(prog: Omit<SearchProgram, 'returns'>, facts: 'meta' | 'header' | null): Promise<{ hits: MessageMeta[]; seqs: number[]; facts: MessageFacts[] }> {
    const view = this.view!;
    if (prog.usesModseq) this.enableCondstore();
    const hits: MessageMeta[] = [];
    const seqs: number[] = [];
    const found: MessageFacts[] = [];
    const withHeader = facts === 'header';
    const cache = new Map();
    const msgs = view.messages.slice();
    const ctx = { maxSeq: msgs.length, maxUid: view.maxUid };
    await this.withRaw(msgs, prog.needsRaw || withHeader, (m, i, raw) => {
      if (matches(prog.key, { seq: i + 1, meta: m, raw, recent: view.recent.has(m.uid), ...ctx }, cache)) {
        hits.push(m);
        seqs.push(i + 1);
        if (facts) found.push(messageFacts(i + 1, m, withHeader ? raw : null));
      }
    });
    return { hits, seqs, facts: found };
  }

  /**
   * withRaw - visit messages in order, with their bytes when wanted: up to FETCH_WINDOW
   * requests are in flight at once (the IPC connection pipelines them).
   */
  private async withRaw(msgs: MessageMeta[], wantRaw: boolean, visit: (m: MessageMeta, index: number, raw: Buffer | null) => void | Promise<void>): Promise<void> {
    if (!wantRaw) {
      for (let i = 0; i < msgs.length; i++) {
        const p = visit(msgs[i]!, i, null);
        if (p) await p;
      }
      return;
    }
    const name = this.view!.name;
    const pending: Array<Promise<Buffer | null>> = [];
    const ask = (i: number): void => {
      const p = this.mail!.fetch(name, msgs[i]!.uid);
      p.catch(() => {});
      pending.push(p);
    };
    let next = 0;
    while (next < msgs.length && next < FETCH_WINDOW) ask(next++);
    for (let i = 0; i < msgs.length; i++) {
      const raw = await pending.shift()!;
      if (next < msgs.length) ask(next++);
      const p = visit(msgs[i]!, i, raw);
      if (p) await p;
    }
  }

  async fetch(tag: string, args: Args, uid: boolean): Promise<void> {
    const setArg = args.atom('sequence set');
    const req: FetchRequest = parseFetchItems(args.next('fetch items'));
    let changedSince: number | null = null;
    let vanished = false;
    const mods = args.optionalList();
    if (mods) {
      const m = new Args(mods);
      while (!m.done) {
        const w = m.atom('fetch modifier').toUpperCase();
        if (w === 'CHANGEDSINCE') changedSince = m.number('mod-sequence');
        else if (w === 'VANISHED') vanished = true;
        else throw new Bad(`Unknown FETCH modifier ${w}`);
      }
    }
    args.end();
    // VANISHED: UID FETCH with CHANGEDSINCE, QRESYNC enabled (RFC 7162 §3.2.6).
    if (vanished && (!uid || changedSince === null || !this.qresync)) throw new Bad('VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC');
    const view = this.view!;
    if (vanished) {
      // `*` reaches the last UID ever given: the expunged ones above the highest present too.
      const gone = await this.vanishedSince(view, changedSince!, new SeqMatcher(parseSequenceSet(setArg), Math.max(view.maxUid, view.uidnext - 1)));
      if (gone) this.send(`* VANISHED (EARLIER) ${gone}\r\n`);
    }
    let msgs = this.resolve(setArg, uid);
    if (changedSince !== null) {
      this.enableCondstore();
      msgs = msgs.filter((m) => m.modseq > changedSince!);
    }
    const withModseq = this.condstore && (changedSince !== null || req.items.some((i) => i.kind === 'MODSEQ'));
    if (req.items.some((i) => i.kind === 'MODSEQ')) this.enableCondstore();
    // A body fetch marks the message \Seen (not with PEEK, not when read-only); FLAGS follow.
    let forceFlags = false;
    if (req.setsSeen && !view.readOnly) {
      const unseen = msgs.filter((m) => !hasFlag(m.flags, '\\Seen')).map((m) => m.uid);
      if (unseen.length) {
        const r = await this.mail!.setFlags(view.name, unseen, 'add', ['\\Seen']);
        for (const u of r.updated) view.update(u);
        forceFlags = true;
      }
    }
    if (forceFlags && !req.items.some((i) => i.kind === 'FLAGS')) req.items.push({ kind: 'FLAGS' });
    let missing = 0;
    const wantsFlags = req.items.some((x) => x.kind === 'FLAGS');
    // With QRESYNC every FETCH response names its UID.
    const opts = { uid: uid || this.qresync, modseq: withModseq };
    // Promises only where there is something to wait for (message bytes, a structure parse, a
    // full socket): UID FETCH 1:* (FLAGS) of 100,000 messages is then one plain loop.
    await this.withRaw(msgs, req.needsRaw, (m, _i, raw) => {
      const seq = view.seqOf(m.uid);
      if (!seq) return;
      if (req.needsRaw && !raw) {
        missing++;
        return;
      }
      const stored = view.messages[seq - 1]!;
      const flags = view.flagsOf(stored);
      const meta = flags === stored.flags ? stored : { ...stored, flags };
      const announce = wantsFlags ? view.announce(stored.flags) : '';
      if (announce) this.send(announce);
      return this.sendFetch(req, seq, meta, raw, opts);
    });
    if (missing) return this.no(tag, 'EXPUNGEISSUED', 'Some of the requested messages no longer exist');
    await this.done(tag, 'FETCH completed', { allowExpunge: uid });
  }

  /** sendFetch - one FETCH response; a promise only when the structure is parsed or the socket is full. */
  private sendFetch(req: FetchRequest, seq: number, meta: MessageMeta, raw: Buffer | null, opts: { uid: boolean; modseq: boolean }): Promise<void> | undefined {
    if (req.needsStructure && raw) return this.structureOf(meta.uid, raw).then((structure) => this.sendAll(renderFetch(req, { seq, meta, raw, structure }, opts)));
    return this.sendAll(renderFetch(req, { seq, meta, raw, structure: null }, opts));
  }

  private async structureOf(uid: number, raw: Buffer): Promise<Part> {
    let p = this.structures.get(uid);
    if (!p) {
      p = await parseStructure(raw);
      if (this.structures.size >= STRUCTURE_CACHE) this.structures.delete(this.structures.keys().next().value!);
      this.structures.set(uid, p);
    }
    return p;
  }

  async store(tag: string, args: Args, uid: boolean): Promise<void> {
    const setArg = args.atom('sequence set');
    let unchangedSince: number | undefined;
    const mods = args.optionalList();
    if (mods) {
      const m = new Args(mods);
      const w = m.atom('store modifier').toUpperCase();
      if (w !== 'UNCHANGEDSINCE') throw new Bad(`Unknown STORE modifier ${w}`);
      unchangedSince = m.number('mod-sequence');
      m.end();
      this.enableCondstore();
    }
    const op = args.atom('store operation').toUpperCase();
    const om = /^([+-]?)FLAGS(\.SILENT)?$/.exec(op);
    if (!om) throw new Bad('Expected FLAGS, +FLAGS or -FLAGS');
    const mode: FlagMode = om[1] === '+' ? 'add' : om[1] === '-' ? 'remove' : 'replace';
    const silent = om[2] !== undefined;
    const flagTokens: Token[] = [];
    while (!args.done) {
      const t = args.next('flags');
      if (t.t === 'list') flagTokens.push(...t.v);
      else flagTokens.push(t);
    }
    const flags = normalizeFlags(atomsOf(flagTokens));
    if (flags.some((f) => f.toLowerCase() === '\\recent')) throw new Bad('\\Recent cannot be stored');
    const view = this.view!;
    if (view.readOnly) throw new No('READ-ONLY', 'Mailbox is read-only');
    const msgs = this.resolve(setArg, uid);
    const r = msgs.length ? await this.mail!.setFlags(view.name, msgs.map((m) => m.uid), mode, flags, unchangedSince) : { updated: [], modified: [] };
    let out = view.announce(r.updated.flatMap((u) => u.flags));
    for (const u of r.updated) {
      view.update(u);
      const seq = view.seqOf(u.uid);
      if (!seq) continue;
      const items: string[] = [];
      const withUid = uid || this.qresync;
      if (withUid) items.push(`UID ${u.uid}`);
      if (!silent) items.push(`FLAGS ${flagList(view.flagsOf(u))}`);
      if (this.condstore) items.push(`MODSEQ (${u.modseq})`);
      if (items.length > (withUid ? 1 : 0)) out += `* ${seq} FETCH (${items.join(' ')})\r\n`;
    }
    this.send(out);
    const modified = r.modified.map((u) => (uid ? u : view.seqOf(u))).filter(Boolean).sort((a, b) => a - b);
    await this.done(tag, 'STORE completed', { allowExpunge: uid, code: modified.length ? `MODIFIED ${formatSet(modified)}` : undefined });
  }

  /** copy - COPY and MOVE (RFC 6851), with COPYUID (RFC 4315). */
  async copy(tag: string, args: Args, uid: boolean, move: boolean): Promise<void> {
    const setArg = args.atom('sequence set');
    const target = this.name(args.astring('mailbox name'));
    args.end();
    const view = this.view!;
    if (move && view.readOnly) throw new No('READ-ONLY', 'Mailbox is read-only');
    const msgs = this.resolve(setArg, uid);
    if (!msgs.length) return this.done(tag, `${move ? 'MOVE' : 'COPY'} completed (no messages)`);
    let r;
    try {
      r = await this.mail!.copy(view.name, msgs.map((m) => m.uid), target, move);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NONEXISTENT') throw new No('TRYCREATE', 'No such mailbox');
      throw err;
    }
    const code = r.pairs.length ? `COPYUID ${r.uidvalidity} ${formatSet(r.pairs.map((p) => p[0]))} ${formatSet(r.pairs.map((p) => p[1]))}` : undefined;
    if (move) {
      if (code) this.send(`* OK [${code}] Moved\r\n`);
      await this.catchUp(true);
      this.send(view.removeUids(r.pairs.map((p) => p[0])).join(''));
      await this.done(tag, 'MOVE completed');
    } else {
      await this.done(tag, 'COPY completed', { code });
    }
  }

  /**
   * enableCondstore - a CONDSTORE enabling command (FETCH MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE,
   * SEARCH MODSEQ) turns it on; the first time, the client learns HIGHESTMODSEQ (RFC 7162 §3.1).
   */
  private enableCondstore(): void {
    if (this.condstore) return;
    this.condstore = true;
    if (this.view) this.send(`* OK [HIGHESTMODSEQ ${this.view.highestModseq}] Highest\r\n`);
  }

  // ---- change catch-up ----

  /** catchUp - report what changed in the selected mailbox since we last looked. */
  private async catchUp(allowExpunge: boolean): Promise<void> {
    const view = this.view;
    if (!view || !view.dirty) return;
    view.dirty = false;
    try {
      const changes = await this.mail!.changes(view.name, view.highestModseq);
      if (changes.kind === 'full' && changes.state.uidvalidity !== view.uidvalidity) {
        this.send('* BYE [UIDVALIDITY] Mailbox was recreated; please reselect\r\n');
        this.hangup('uidvalidity changed');
        return;
      }
      const lines = view.apply(changes, allowExpunge, this.condstore);
      if (lines.length) await this.sendAll(lines);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NONEXISTENT') {
        this.send('* BYE Selected mailbox was deleted\r\n');
        this.hangup('mailbox deleted');
        return;
      }
      view.dirty = true;
      this.log.warn({ event: 'imapd.catchup_failed', err: String(err) }, 'cannot read mailbox changes');
    }
  }

  // ---- the end ----

  private cleanup(): void {
    if (this.user !== null) this.log.info({ event: 'imapd.logout', user: this.user, reason: this.endReason }, 'logged out');
    this.notifier?.stop();
    this.deselect();
    this.mail?.close();
    this.mail = null;
    this.reader.detach();
    this.flush();
    if (!this.sock.destroyed) {
      this.sock.end();
      const s = this.sock;
      setTimeout(() => s.destroy(), 2000).unref();
    }
  }
}

/** normalizeFlags - system flags in their canonical case; keywords as given (atoms only). */
function normalizeFlags(flags: string[]): string[] {
  const out: string[] = [];
  for (const f of flags) {
    if (f.startsWith('\\')) {
      const sys = [...SYSTEM_FLAGS, '\\Recent'].find((x) => x.toLowerCase() === f.toLowerCase());
      if (!sys) throw new Bad(`Unknown system flag ${f.slice(0, 40)}`);
      if (!out.includes(sys)) out.push(sys);
    } else {
      if (!/^[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]{1,100}$/.test(f)) throw new Bad('Invalid keyword');
      if (!out.some((x) => x.toLowerCase() === f.toLowerCase())) out.push(f);
    }
  }
  return out;
}

/** decodePlain - SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password` from base64. */
function decodePlain(b64: string): { user: string; password: string } | null {
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return null;
  const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
  if (parts.length !== 3) return null;
  const [authzid, user, password] = parts as [string, string, string];
  if (!user || !password) return null;
  // Logging in as someone else (a proxy authorization) is not offered.
  if (authzid && authzid !== user) return null;
  return { user, password };
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

function highestModseqOf(ms: MessageMeta[]): number {
  return ms.reduce((a, m) => Math.max(a, m.modseq), 0);
}

/**
 * esearchLine - `* ESEARCH (TAG ...)` for RETURN options (RFC 4731; RFC 5267 for SORT, whose
 * MIN/MAX are the first and last in sort order and ALL keeps that order). MODSEQ is the
 * highest of the messages the answer names (RFC 7162 §3.1.5).
 */
function esearchLine(tag: string, uid: boolean, ret: ReturnOptions, hits: MessageMeta[], nums: number[], withModseq: boolean, sorted: boolean): string {
  const returns = ret.options;
  let line = `* ESEARCH (TAG ${istring(tag)})${uid ? ' UID' : ''}`;
  const named: MessageMeta[] = [];
  if (nums.length) {
    if (returns.includes('MIN')) {
      line += ` MIN ${nums[0]}`;
      named.push(hits[0]!);
    }
    if (returns.includes('MAX')) {
      line += ` MAX ${nums[nums.length - 1]}`;
      named.push(hits[hits.length - 1]!);
    }
    if (returns.includes('ALL')) {
      line += ` ALL ${sorted ? formatOrdered(nums) : formatSet(nums)}`;
      named.push(...hits);
    }
  }
  if (ret.partial) {
    // PARTIAL low:high - those positions of the result (RFC 5267 §4.4), NIL when none.
    const [low, high] = ret.partial;
    const part = nums.slice(low - 1, high);
    line += ` PARTIAL (${low}:${high} ${part.length ? (sorted ? formatOrdered(part) : formatSet(part)) : 'NIL'})`;
    named.push(...hits.slice(low - 1, high));
  }
  if (returns.includes('COUNT')) {
    line += ` COUNT ${nums.length}`;
    named.push(...hits);
  }
  if (withModseq && named.length) line += ` MODSEQ ${highestModseqOf(named)}`;
  return line + '\r\n';
}

/** formatOrdered - numbers in the given order, runs of consecutive ascending ones as ranges. */
function formatOrdered(nums: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < nums.length; ) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    out.push(j > i ? `${nums[i]}:${nums[j]}` : String(nums[i]));
    i = j + 1;
  }
  return out.join(',');
}

interface QresyncParams {
  uidvalidity: number;
  modseq: number;
  knownUids: Range[] | null;
}

/** parseQresync - `(uidvalidity modseq [known-uids [(seqs uids)]])` of SELECT (RFC 7162 §3.2.5). */
function parseQresync(list: Token[]): QresyncParams {
  const a = new Args(list);
  const uidvalidity = a.number('UIDVALIDITY');
  const modseq = a.number('mod-sequence');
  if (uidvalidity < 1 || modseq < 1) throw new Bad('Bad QRESYNC parameters');
  let knownUids: Range[] | null = null;
  if (a.peek()?.t === 'atom') knownUids = parseSequenceSet(a.atom('known UIDs'));
  // Known sequence/UID pairs only help a server without expunge history; checked, then unused.
  const pairs = a.optionalList();
  if (pairs) {
    const p = new Args(pairs);
    parseSequenceSet(p.atom('known sequence set'));
    parseSequenceSet(p.atom('known UID set'));
    p.end();
  }
  a.end();
  return { uidvalidity, modseq, knownUids };
}
