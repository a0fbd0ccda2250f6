// IPC server - a table of handlers keyed by message name, served over TCP or Unix sockets.
//
// Strategy: requests on one connection run as they arrive (so a pipelining client gets
// concurrency, e.g. group commit in queued) but replies are written strictly in request order.
// A handler that reads raw data (`store` style) runs alone: the connection reads nothing else
// until its bytes are consumed. Built in: `ping`, `quit`, `status` (name, version, uptime,
// connections), `hello` (the shared-secret handshake, required first when a secret is set) and
// `now: NAME` (does NAME take the one-round-trip form, below).
//
// The one-round-trip form of a raw-input message (extension): `NAME: PARAMS ; now`, its bytes
// right behind the line, no go-ahead, one reply. The server opens the raw stream before the
// handler runs; the handler's go-ahead is not sent, and whatever it refuses, the bytes are read
// and dropped, so framing holds. A LENGTH that cannot be read loses the framing: `error`, then
// the connection is closed.
//
// In-thread calls (extension, no wire): a server made with `inThread` is listed under its
// addresses for clients of the same JavaScript thread made with `inThread` (fmail start runs
// authd, queued, router and mailboxd in one thread). Such a client calls the handler directly:
// the same messages, parameter checks, handlers and replies, with no socket, no encoding and no
// event-loop turn in between. It gets a connection state of its own (id, data, close handlers,
// as a socket would), is trusted like code of this process (no hello), sends every request
// this way (one connection state, never split between two), and takes the socket again only
// once the server is gone from the thread.
//
// Limits: 64 KiB lines (longer: `error: line too long`, connection closed), idle timeout, a
// cap on connections and on replies pending per connection. With a secret, a connection must
// say hello within helloTimeoutMs, so connections of someone without the secret do not pile
// up. A handler that throws answers `error: internal error`; nothing a client sends can stop
// the server.

import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';

import type { Logger } from 'pino';

import { type IpcAddress, formatAddress, listenOn, parseAddress } from './address.js';
import { CodecError, type Message, formatMessage, parseMessage } from './codec.js';
import { FrameReader, LineTooLongError } from './frame-reader.js';
import { type Reply, error, ok } from './reply.js';

/** Per-connection state a handler may keep (e.g. mailboxd's message numbering). */
export interface IpcConnection {
  readonly id: number;
  readonly remote: string;
  readonly data: Map<string, unknown>;
  /** Run FN when this connection closes (e.g. give back what its client held). */
  onClose(fn: () => void): void;
}

export interface RequestContext {
  readonly name: string;
  readonly params: string[];
  readonly conn: IpcConnection;
  /** Raw-input handlers only: write a line now (e.g. the `ok` go-ahead before raw data). */
  send(name: string, params?: string[]): void;
  /** Raw-input handlers only: a stream of exactly `length` bytes that follow the go-ahead. */
  receiveRaw(length: number): Readable;
  /**
   * Raw-input handlers, in-thread calls only: the bytes, already in memory (what receiveRaw
   * would stream), so a handler that wants them whole skips the stream.
   */
  readonly rawBytes?: readonly Buffer[];
}

export interface HandlerSpec {
  /** Allowed parameter count: exact, or [min, max]. */
  params: number | [number, number];
  /** True when the handler reads raw bytes after its go-ahead (`store`). */
  rawInput?: boolean;
  /**
   * Raw-input handlers that also take the one-round-trip form (`; now` after PARAMS): the
   * length of the bytes from PARAMS (without `now`), or null when it is not a length.
   */
  nowLength?(params: string[]): number | null;
  handle(ctx: RequestContext): Reply | Promise<Reply>;
}

export interface IpcServerOptions {
  /** Name answered by `ping` (e.g. `queued`). */
  serverName: string;
  version: string;
  logger: Logger;
  idleTimeoutMs?: number;
  maxConnections?: number;
  /** Replies queued on one connection before it stops reading (bounds memory). */
  maxPending?: number;
  /** When set, every connection must open with `hello: SECRET`. */
  secret?: string;
  /** With a secret: a connection that has not said hello by then is closed (default 10 s). */
  helloTimeoutMs?: number;
  /** Called after each handled request with its handling time (for metrics). */
  onRequest?(name: string, seconds: number): void;
  /** Take in-thread calls from clients of this thread (see "In-thread calls"). */
  inThread?: boolean;
}

/** An in-thread client's connection: requests are calls. */
export interface LocalConnection {
  /** call - run NAME's handler; BODY (raw-input handlers) is its bytes: pieces, or a stream of LENGTH bytes. */
  call(name: string, params: readonly string[], body?: LocalBody): Promise<Reply>;
  /** close - as a socket closing: the connection's close handlers run. */
  close(): void;
}

export type LocalBody = readonly Buffer[] | { stream: Readable; length: number };

interface LocalState extends IpcConnection {
  closeHandlers: Array<() => void>;
}

// Module state is per thread (a worker thread loads its own copy): only same-thread servers.
const inThreadServers = new Map<string, IpcServer>();

/** inThreadServer - the server of this thread taking in-thread calls at ADDRESS, if any. */
export function inThreadServer(address: string): IpcServer | undefined {
  return inThreadServers.get(address);
}

interface ConnState extends IpcConnection {
  socket: net.Socket;
  closeHandlers: Array<() => void>;
  authed: boolean;
  busy: number;
}

export class IpcServer {
  private readonly handlers = new Map<string, HandlerSpec>();
  private readonly servers: net.Server[] = [];
  private readonly conns = new Set<ConnState>();
  private nextConnId = 1;
  private closing = false;
  private readonly localConns = new Set<LocalState>();
  private localBusy = 0;
  readonly bound: IpcAddress[] = [];

  constructor(private readonly opts: IpcServerOptions) {
    const startedAt = Date.now();
    this.on('ping', { params: 0, handle: () => ok(`${opts.serverName} ${opts.version}`) });
    // Extension: does NAME take the one-round-trip form (`; now`)? Asked once per connection.
    this.on('now', { params: 1, handle: (c) => (this.handlers.get(c.params[0]!)?.nowLength ? ok() : error(`${c.params[0]!.slice(0, 40)} has no one-round-trip form`)) });
    // Extension for `fmail status`: name ; version ; uptime seconds ; open connections.
    this.on('status', {
      params: 0,
      handle: () => ok(opts.serverName, opts.version, String(Math.floor((Date.now() - startedAt) / 1000)), String(this.conns.size)),
    });
  }

  /** on - register the handler for one message name. */
  on(name: string, spec: HandlerSpec): this {
    this.handlers.set(name, spec);
    return this;
  }

  /** listen - start serving on an address (string or parsed); resolves with the bound address. */
  async listen(address: string | IpcAddress): Promise<string> {
    const addr = typeof address === 'string' ? parseAddress(address) : address;
    const server = net.createServer((socket) => this.accept(socket));
    const bound = await listenOn(server, addr);
    this.servers.push(server);
    this.bound.push(bound);
    if (this.opts.inThread) {
      inThreadServers.set(formatAddress(bound), this);
      inThreadServers.set(formatAddress(addr), this);
    }
    this.opts.logger.info({ event: 'ipc.listen', address: formatAddress(bound) }, 'listening');
    return formatAddress(bound);
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** close - stop listening, let requests in progress finish (bounded), then drop connections. */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    for (const [address, server] of inThreadServers) if (server === this) inThreadServers.delete(address);
    // net.Server.close() only calls back once every connection is gone, so ask first, wait after.
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    const deadline = Date.now() + graceMs;
    while (([...this.conns].some((c) => c.busy > 0) || this.localBusy > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const c of this.conns) c.socket.destroy();
    this.conns.clear();
    for (const c of [...this.localConns]) closeLocal(this.localConns, c, this.opts.logger);
    await closed;
  }

  /** localConnection - a connection for a client of this thread (see "In-thread calls"). */
  localConnection(): LocalConnection {
    const conn: LocalState = {
      id: this.nextConnId++,
      remote: 'local',
      data: new Map(),
      closeHandlers: [],
      onClose(fn) {
        this.closeHandlers.push(fn);
      },
    };
    this.localConns.add(conn);
    return {
      call: (name, params, body) => this.callLocal(conn, name, params, body),
      close: () => closeLocal(this.localConns, conn, this.opts.logger),
    };
  }

  private async callLocal(conn: LocalState, name: string, params: readonly string[], body?: LocalBody): Promise<Reply> {
    if (this.closing || !this.localConns.has(conn)) return error('server shutting down');
    const spec = this.handlers.get(name);
    if (!spec) return error(`unknown message ${name}`);
    const [min, max] = typeof spec.params === 'number' ? [spec.params, spec.params] : spec.params;
    if (params.length < min || params.length > max) return paramCountError(name, min, max, params.length);
    if ((body !== undefined) !== (spec.rawInput === true)) return error(`${name}: ${body ? 'takes no bytes' : 'needs its bytes'}`);
    const ctx: RequestContext = {
      name,
      params: [...params],
      conn,
      // No go-ahead to send: the bytes are here already.
      send: () => {},
      receiveRaw: (length) => {
        const total = !body ? 0 : 'stream' in body ? body.length : body.reduce((n, p) => n + p.length, 0);
        if (length !== total) throw new Error(`receiveRaw(${length}) for ${total} bytes`);
        return body && 'stream' in body ? body.stream : Readable.from(body ?? [], { objectMode: false });
      },
      rawBytes: body && !('stream' in body) ? body : undefined,
    };
    this.localBusy++;
    try {
      return await runHandler(spec, ctx, this.opts);
    } finally {
      this.localBusy--;
    }
  }

  private accept(socket: net.Socket): void {
    const max = this.opts.maxConnections ?? 1000;
    const refusal = this.closing ? 'server shutting down' : this.conns.size >= max ? 'too many connections' : null;
    if (refusal) {
      socket.on('error', () => {});
      socket.write(formatMessage('error', [refusal]));
      closeGracefully(socket);
      return;
    }
    socket.setNoDelay(true);
    const conn: ConnState = {
      id: this.nextConnId++,
      remote: socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix',
      data: new Map(),
      socket,
      authed: !this.opts.secret,
      busy: 0,
      closeHandlers: [],
      onClose(fn) {
        this.closeHandlers.push(fn);
      },
    };
    this.conns.add(conn);
    if (!conn.authed) {
      const t = setTimeout(() => {
        if (!conn.authed) socket.destroy();
      }, this.opts.helloTimeoutMs ?? 10_000);
      t.unref();
      socket.once('close', () => clearTimeout(t));
    }
    socket.setTimeout(this.opts.idleTimeoutMs ?? 300_000, () => socket.destroy());
    socket.on('error', () => {});
    socket.on('close', () => {
      this.conns.delete(conn);
      for (const fn of conn.closeHandlers.splice(0)) {
        try {
          fn();
        } catch (err) {
          this.opts.logger.error({ event: 'ipc.close_handler_error', err: String(err) }, 'close handler failed');
        }
      }
    });
    this.serve(conn).catch((err: unknown) => {
      this.opts.logger.warn({ event: 'ipc.conn_error', err: String(err) }, 'connection failed');
      socket.destroy();
    });
  }

  private async serve(conn: ConnState): Promise<void> {
    const { socket } = conn;
    const reader = new FrameReader(socket);
    const writer = new OrderedWriter(socket);
    const maxPending = this.opts.maxPending ?? 1024;
    for (;;) {
      let line: string | null | undefined;
      try {
        line = reader.tryLine();
        if (line === undefined) line = await reader.readLine();
      } catch (err) {
        if (err instanceof LineTooLongError) {
          writer.push(error('line too long'));
          await writer.idle();
          closeGracefully(socket);
          return;
        }
        throw err;
      }
      if (line === null) break;
      if (line.length === 0 || line === '\r') continue;

      let msg: Message;
      try {
        msg = parseMessage(line);
      } catch (err) {
        writer.push(error(err instanceof CodecError ? err.message : 'malformed request'));
        continue;
      }

      if (msg.name === 'quit') {
        writer.push(ok());
        await writer.idle();
        closeGracefully(socket);
        return;
      }
      if (msg.name === 'hello') {
        const reply = this.hello(conn, msg);
        writer.push(reply);
        if (reply.kind === 'error') {
          // DESIGN.md: a refused hello closes the connection (no guessing on one connection).
          await writer.idle();
          closeGracefully(socket);
          return;
        }
        continue;
      }
      if (!conn.authed) {
        writer.push(error('authentication required: send hello: SECRET first'));
        await writer.idle();
        closeGracefully(socket);
        return;
      }
      const spec = this.handlers.get(msg.name);
      if (!spec) {
        writer.push(error(`unknown message ${msg.name}`));
        continue;
      }
      const [min, max] = typeof spec.params === 'number' ? [spec.params, spec.params] : spec.params;
      // The one-round-trip form: `now` after the parameters (counted without it).
      const now = spec.rawInput === true && spec.nowLength !== undefined && msg.params.length > min && msg.params[msg.params.length - 1] === 'now';
      if (now) msg.params.pop();
      if (msg.params.length < min || msg.params.length > max) {
        writer.push(paramCountError(msg.name, min, max, msg.params.length));
        if (!now) continue;
        // Bytes follow that cannot be told from requests.
        await writer.idle();
        closeGracefully(socket);
        return;
      }

      if (now) {
        await writer.idle();
        const length = spec.nowLength!(msg.params);
        if (length === null || !Number.isSafeInteger(length) || length < 0) {
          writer.push(error(`${msg.name}: bad length in the one-round-trip form, closing (its bytes cannot be told from requests)`));
          await writer.idle();
          closeGracefully(socket);
          return;
        }
        await this.runRawHandler(conn, spec, msg, reader, writer, length);
      } else if (spec.rawInput) {
        await writer.idle();
        await this.runRawHandler(conn, spec, msg, reader, writer);
      } else {
        conn.busy++;
        const ctx = this.context(conn, msg, null, null);
        const result = runHandler(spec, ctx, this.opts).finally(() => conn.busy--);
        writer.push(result);
        if (writer.pending >= maxPending) await writer.idle();
      }
    }
    await writer.idle();
  }

  private async runRawHandler(
    conn: ConnState,
    spec: HandlerSpec,
    msg: Message,
    reader: FrameReader,
    writer: OrderedWriter,
    nowLength?: number,
  ): Promise<void> {
    let rawLength = 0;
    let rawStream: Readable | null = null;
    let ctx = this.context(conn, msg, reader, (len, stream) => {
      rawLength = len;
      rawStream = stream;
    });
    if (nowLength !== undefined) {
      // The bytes are already on their way: the stream opens now, the go-ahead is not sent.
      const stream = ctx.receiveRaw(nowLength);
      ctx = {
        ...ctx,
        send: () => {},
        receiveRaw: (length) => {
          if (length !== nowLength) throw new Error(`receiveRaw(${length}) after ${nowLength} bytes were announced`);
          return stream;
        },
      };
    }
    conn.busy++;
    try {
      const reply = await runHandler(spec, ctx, this.opts);
      // A handler that gave up before reading everything: skip the rest so framing stays right.
      const stream = rawStream as Readable | null;
      if (stream && !stream.readableEnded && !stream.destroyed) {
        stream.resume();
        await new Promise<void>((resolve) => {
          stream.once('end', resolve);
          stream.once('close', resolve);
          stream.once('error', () => resolve());
        });
      } else if (stream === null && rawLength > 0) {
        await reader.skipRaw(rawLength);
      }
      writer.push(reply);
      await writer.idle();
    } finally {
      conn.busy--;
    }
  }

  private context(
    conn: ConnState,
    msg: Message,
    reader: FrameReader | null,
    onRaw: ((len: number, stream: Readable) => void) | null,
  ): RequestContext {
    return {
      name: msg.name,
      params: msg.params,
      conn,
      send: (name, params = []) => {
        if (!reader) throw new Error('send() is only for raw-input handlers');
        conn.socket.write(formatMessage(name, params));
      },
      receiveRaw: (length) => {
        if (!reader || !onRaw) throw new Error('receiveRaw() is only for raw-input handlers');
        const stream = reader.readRaw(length);
        onRaw(length, stream);
        return stream;
      },
    };
  }

  private hello(conn: ConnState, msg: Message): Reply {
    const secret = this.opts.secret;
    if (!secret) {
      conn.authed = true;
      return ok();
    }
    const given = Buffer.from(msg.params[0] ?? '');
    const want = Buffer.from(secret);
    if (given.length === want.length && timingSafeEqual(given, want)) {
      conn.authed = true;
      return ok();
    }
    return error('bad secret');
  }
}

/** paramCountError - the answer to NAME with GOT parameters where MIN to MAX are allowed. */
function paramCountError(name: string, min: number, max: number, got: number): Reply {
  const want = min === max ? `${min}` : `${min} to ${max}`;
  return error(`${name} takes ${want} parameter${max === 1 ? '' : 's'}, got ${got}`);
}

// closeLocal - an in-thread connection ends: its close handlers run, as for a socket.
function closeLocal(conns: Set<LocalState>, conn: LocalState, logger: Logger): void {
  if (!conns.delete(conn)) return;
  for (const fn of conn.closeHandlers.splice(0)) {
    try {
      fn();
    } catch (err) {
      logger.error({ event: 'ipc.close_handler_error', err: String(err) }, 'close handler failed');
    }
  }
}

// Ends our side and discards what the peer still sends until it closes too (a socket nobody
// reads never sees the peer's FIN), then forces the close if the peer lingers.
function closeGracefully(socket: net.Socket): void {
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  socket.end();
  socket.resume();
  setTimeout(() => socket.destroy(), 2000).unref();
}

async function runHandler(spec: HandlerSpec, ctx: RequestContext, opts: IpcServerOptions): Promise<Reply> {
  const started = opts.onRequest ? process.hrtime.bigint() : 0n;
  try {
    return await spec.handle(ctx);
  } catch (err) {
    opts.logger.error({ event: 'ipc.handler_error', message: ctx.name, err: String(err) }, 'handler failed');
    return error('internal error');
  } finally {
    if (opts.onRequest) opts.onRequest(ctx.name, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/**
 * OrderedWriter - writes replies in request order, whatever order their handlers finish in.
 * Replies whose handlers finish in the same turn of the event loop leave in one write: the
 * socket is uncorked once that turn's promise jobs are done, not before each wait (pipelined
 * `fetch`es answered from the page cache cost one writev each, a quarter of mailboxd's time).
 */
class OrderedWriter {
  private readonly queue: Array<Reply | Promise<Reply>> = [];
  private running: Promise<void> | null = null;
  private corked = false;
  private releaseQueued = false;

  constructor(private readonly socket: net.Socket) {}

  get pending(): number {
    return this.queue.length;
  }

  push(reply: Reply | Promise<Reply>): void {
    this.queue.push(reply);
    if (!this.running) {
      this.running = this.pump()
        .catch(() => {
          this.queue.length = 0;
          this.socket.destroy();
        })
        .finally(() => (this.running = null));
    }
  }

  /** idle - resolves when every queued reply has been written. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** hold - gather writes (cork, at most once). */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
  }

  /** release - write what was gathered now. */
  release(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** releaseSoon - release once the promise jobs of this turn have run (process.nextTick runs after them). */
  private releaseSoon(): void {
    if (this.releaseQueued) return;
    this.releaseQueued = true;
    process.nextTick(() => {
      this.releaseQueued = false;
      this.release();
    });
  }

  private async pump(): Promise<void> {
    this.hold();
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        let reply: Reply;
        if (head instanceof Promise) {
          // Flush what is ready before waiting on a slow handler (soon: a fast one joins it).
          this.releaseSoon();
          reply = await head;
          this.hold();
        } else {
          reply = head;
        }
        this.queue.shift();
        if (this.socket.destroyed) continue;
        await writeReply(this.socket, reply, this);
      }
    } finally {
      this.releaseSoon();
    }
  }
}

async function writeReply(socket: net.Socket, reply: Reply, writer: OrderedWriter): Promise<void> {
  switch (reply.kind) {
    case 'ok':
      socket.write(formatMessage('ok', reply.values));
      return;
    case 'error':
      socket.write(formatMessage('error', reply.message === undefined ? [] : [reply.message]));
      return;
    case 'lines': {
      let text = '';
      for (const l of reply.lines) text += formatMessage(l.name, l.params);
      socket.write(text);
      return;
    }
    case 'text':
      socket.write(reply.text);
      return;
    case 'raw': {
      socket.write(formatMessage('ok', reply.extra ? [String(reply.size), ...reply.extra] : [String(reply.size)]));
      if (Buffer.isBuffer(reply.body)) {
        if (reply.body.length > 0) socket.write(reply.body);
        return;
      }
      writer.release();
      await pipeExact(reply.body, socket, reply.size);
      writer.hold();
      return;
    }
  }
}

// Streams a body to the socket with back-pressure; a body that ends short breaks the
// connection rather than leave the client waiting for bytes that never come.
async function pipeExact(body: Readable, socket: net.Socket, size: number): Promise<void> {
  let sent = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    sent += buf.length;
    if (sent > size) throw new Error('raw body longer than announced');
    if (!socket.write(buf)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
      if (socket.destroyed) throw new Error('peer went away');
    }
  }
  if (sent !== size) {
    socket.destroy();
    throw new Error('raw body shorter than announced');
  }
}
