// IPC client - one persistent, pipelined connection to one server.
//
// Requests are written as soon as they are made and their replies read back in order. The
// connection is opened on first use and again after the peer went away (e.g. restarted); a
// request in flight when that happens fails, the next one reconnects. `store`-style requests
// hold the write side until the server's go-ahead and the raw bytes are through.
//
// In-thread: a client made with `inThread` whose address is a server of this same thread
// (server.ts, "In-thread calls") calls its handlers directly, every request of it (its
// connection state lives on one side only), until that server is gone from the thread.
//
// Timeout: a connection with requests outstanding that receives nothing for `timeoutMs` is
// closed and every outstanding request fails with IpcTimeoutError.

import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

import { type IpcAddress, connectTo, formatAddress, parseAddress } from './address.js';
import { CodecError, type Message, formatMessage, parseMessage } from './codec.js';
import { FrameReader } from './frame-reader.js';
import type { IpcReply, Reply } from './reply.js';
import { type IpcServer, type LocalConnection, inThreadServer } from './server.js';

export interface IpcClientOptions {
  /** Silence allowed while requests are outstanding (default 30 s). */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** Shared secret sent as `hello: SECRET` on every new connection. */
  secret?: string;
  /** Call a server of this thread at the address directly (server.ts, "In-thread calls"). */
  inThread?: boolean;
}

export class IpcTimeoutError extends Error {}
export class IpcConnectionError extends Error {}

type Receive<T> = (reader: FrameReader) => Promise<T>;

interface Pending {
  receive: Receive<unknown>;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export interface ListResult {
  reply: IpcReply;
  items: Message[];
}

export interface StreamResult {
  reply: IpcReply;
  size: number;
  /** The raw bytes (present when reply.ok); must be consumed before the next reply is read. */
  stream?: Readable;
}

/** Conn - one socket, its reader, and the queue of replies it still owes. */
class Conn {
  readonly reader: FrameReader;
  private readonly queue: Pending[] = [];
  private running = false;
  dead = false;
  private lastActivity = Date.now();
  private corked = false;
  private readonly watchdog: NodeJS.Timeout;
  /** Per message name: does the server at the other end take the one-round-trip form (`now: NAME`)? */
  readonly nowForms = new Map<string, Promise<boolean>>();

  constructor(
    readonly socket: Socket,
    private readonly timeoutMs: number,
    private readonly label: string,
  ) {
    this.reader = new FrameReader(socket);
    socket.on('data', () => (this.lastActivity = Date.now()));
    socket.on('close', () => this.fail(new IpcConnectionError(`connection to ${label} closed`)));
    socket.on('error', () => {});
    this.watchdog = setInterval(() => this.check(), Math.max(50, Math.min(1000, timeoutMs / 4)));
    this.watchdog.unref();
  }

  write(data: string | Buffer): boolean {
    if (this.queue.length === 0) this.lastActivity = Date.now();
    // Requests made in the same tick leave in one syscall (writev), not one each.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    return this.socket.write(data);
  }

  expect<T>(receive: Receive<T>): Promise<T> {
    if (this.dead) return Promise.reject(new IpcConnectionError(`connection to ${this.label} closed`));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ receive, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0 && !this.dead) {
      const head = this.queue[0]!;
      try {
        const value = await head.receive(this.reader);
        this.queue.shift();
        head.resolve(value);
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
      }
    }
    this.running = false;
  }

  private check(): void {
    if (this.queue.length > 0 && Date.now() - this.lastActivity > this.timeoutMs) {
      this.fail(new IpcTimeoutError(`no reply from ${this.label} within ${this.timeoutMs} ms`));
    }
  }

  fail(err: Error): void {
    if (!this.dead) {
      this.dead = true;
      clearInterval(this.watchdog);
      this.socket.destroy();
    }
    const pending = this.queue.splice(0);
    for (const p of pending) p.reject(err);
  }

  get outstanding(): number {
    return this.queue.length;
  }
}

export class IpcClient {
  readonly address: IpcAddress;
  private conn: Conn | null = null;
  private connecting: Promise<Conn> | null = null;
  private writeGate: Promise<void> | null = null;
  private closed = false;
  private readonly timeoutMs: number;
  private readonly addressText: string;
  private localServer: IpcServer | null = null;
  private localConn: LocalConnection | null = null;

  constructor(
    address: string | IpcAddress,
    private readonly opts: IpcClientOptions = {},
  ) {
    this.address = typeof address === 'string' ? parseAddress(address) : address;
    this.addressText = formatAddress(this.address);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** request - one message, one `ok`/`error` reply. */
  request(name: string, params: string[] = []): Promise<IpcReply> {
    const local = this.local();
    if (local) return this.timed(local.call(name, params)).then(toIpcReply);
    return this.exchange(name, params, readReply);
  }

  /**
   * requestList - a `list`-style exchange: `ok: COUNT`, COUNT lines, `ok`. `parseItem` turns
   * each line (terminator removed) into an item, parseMessage by default; a caller that knows
   * the line's form can skip the Message objects (100,000 of them for a big folder's index).
   */
  requestList(name: string, params?: string[]): Promise<ListResult>;
  requestList<T>(name: string, params: string[], parseItem: (line: string) => T): Promise<{ reply: IpcReply; items: T[] }>;
  requestList<T>(name: string, params: string[] = [], parseItem?: (line: string) => T): Promise<{ reply: IpcReply; items: Array<T | Message> }> {
    const parse: (line: string) => T | Message = parseItem ?? parseMessage;
    const local = this.local();
    if (local) return this.timed(local.call(name, params)).then((r) => listOf(r, parse));
    return this.exchange(name, params, async (reader) => {
      const reply = await readReply(reader);
      if (!reply.ok) return { reply, items: [] };
      const count = Number(reply.params[0]);
      if (!Number.isSafeInteger(count) || count < 0) throw new CodecError(`bad list count ${reply.params[0]}`);
      const items: Array<T | Message> = [];
      while (items.length < count) {
        // Lines already buffered are taken in bulk, without a promise each (a list can be 100,000 long).
        const lines = reader.takeLines(count - items.length);
        if (lines.length === 0) items.push(parse(await readLine(reader)));
        else for (const line of lines) items.push(parse(line));
      }
      const end = await readReply(reader);
      if (!end.ok) throw new CodecError('list did not end with ok');
      return { reply, items };
    });
  }

  /** requestRaw - a `retr`-style exchange, the bytes gathered in memory. */
  requestRaw(name: string, params: string[] = []): Promise<{ reply: IpcReply; data?: Buffer }> {
    const local = this.local();
    if (local) return this.timed(local.call(name, params).then(rawOf));
    return this.exchange(name, params, async (reader) => {
      const reply = await readReply(reader);
      if (!reply.ok) return { reply };
      const size = Number(reply.params[0]);
      if (!Number.isSafeInteger(size) || size < 0) throw new CodecError(`bad raw size ${reply.params[0]}`);
      return { reply, data: await reader.readRawBuffer(size) };
    });
  }

  /** requestStream - a `retr`-style exchange; the bytes arrive as a stream (constant memory). */
  requestStream(name: string, params: string[] = []): Promise<StreamResult> {
    const local = this.local();
    if (local) return this.timed(local.call(name, params)).then(streamOf);
    return new Promise<StreamResult>((resolve, reject) => {
      this.exchange(name, params, async (reader) => {
        const reply = await readReply(reader);
        if (!reply.ok) {
          resolve({ reply, size: 0 });
          return;
        }
        const size = Number(reply.params[0]);
        if (!Number.isSafeInteger(size) || size < 0) throw new CodecError(`bad raw size ${reply.params[0]}`);
        const stream = reader.readRaw(size);
        resolve({ reply, size, stream });
        // The connection reads nothing else until these bytes are through.
        await new Promise<void>((done, fail) => {
          stream.once('end', done);
          stream.once('error', fail);
          stream.once('close', () => (stream.readableEnded ? done() : fail(new Error('raw stream closed early'))));
        });
      }).catch(reject);
    });
  }

  /**
   * store - a `store`-style exchange: the header, the server's go-ahead, exactly `length` raw
   * bytes, then the final reply. A refused header returns its error and sends no data.
   */
  async store(name: string, params: string[], body: Buffer | Readable, length?: number): Promise<IpcReply> {
    const size = Buffer.isBuffer(body) ? body.length : length;
    if (size === undefined) throw new Error('store: a stream body needs its length');
    const local = this.local();
    if (local) return this.timed(local.call(name, params, Buffer.isBuffer(body) ? [body] : { stream: body, length: size })).then(toIpcReply);
    while (this.writeGate) await this.writeGate;
    let release!: () => void;
    this.writeGate = new Promise<void>((r) => (release = r));
    let final: Promise<IpcReply>;
    try {
      const conn = await this.connection();
      conn.write(formatMessage(name, params));
      const go = await conn.expect(readReply);
      if (!go.ok) return go;
      try {
        await writeBody(conn, body, size);
      } catch (err) {
        conn.fail(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
      final = conn.expect(readReply);
    } finally {
      this.writeGate = null;
      release();
    }
    return final;
  }

  /**
   * storeNow - store() in one round trip where the server takes it: `NAME: PARAMS ; now` and
   * the bytes in one write, then the one reply (no go-ahead to wait for). Whether it does is
   * asked once per connection (`now: NAME`); a server that does not know the form gets store().
   * BODY may be given in pieces (written as they are, no concatenation).
   */
  async storeNow(name: string, params: string[], body: Buffer | readonly Buffer[]): Promise<IpcReply> {
    const local = this.local();
    if (local) return toIpcReply(await this.timed(local.call(name, params, Buffer.isBuffer(body) ? [body] : body)));
    const probed = await this.connection();
    let takesNow = probed.nowForms.get(name);
    if (!takesNow) {
      takesNow = this.request('now', [name]).then(
        (r) => r.ok,
        () => false,
      );
      probed.nowForms.set(name, takesNow);
    }
    if (!(await takesNow)) return this.store(name, params, Buffer.isBuffer(body) ? body : Buffer.concat(body));
    while (this.writeGate) await this.writeGate;
    const conn = await this.connection();
    // A new connection since the question (the old one died): ask again there.
    if (conn !== probed) return this.storeNow(name, params, body);
    // Header and bytes leave in one writev (Conn corks the writes of one tick).
    conn.write(formatMessage(name, [...params, 'now']));
    const reply = conn.expect(readReply);
    // Marked handled: if the bytes cannot all go out (the server went away), the drain below
    // throws and nobody awaits REPLY, whose rejection would otherwise end the process.
    reply.catch(() => {});
    // Every piece queued before any wait: no other request's line may come between them.
    let full = false;
    for (const piece of Buffer.isBuffer(body) ? [body] : body) if (piece.length > 0 && !conn.write(piece)) full = true;
    if (full) await drained(conn.socket);
    return reply;
  }

  /** close - end the connection (outstanding requests fail). */
  close(): void {
    this.closed = true;
    this.localConn?.close();
    this.localConn = null;
    this.localServer = null;
    this.conn?.socket.end();
    this.conn?.fail(new IpcConnectionError('client closed'));
    this.conn = null;
  }

  /** local - the in-thread connection, when allowed and a server of this thread is at our address now. */
  private local(): LocalConnection | null {
    if (!this.opts.inThread || this.closed) return null;
    const server = inThreadServer(this.addressText) ?? null;
    if (server !== this.localServer) {
      this.localConn?.close();
      this.localServer = server;
      this.localConn = server?.localConnection() ?? null;
    }
    return this.localConn;
  }

  /** timed - P, or IpcTimeoutError after timeoutMs (the socket's watchdog, for a call). */
  private timed<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new IpcTimeoutError(`no reply from ${this.addressText} within ${this.timeoutMs} ms`)), this.timeoutMs);
      timer.unref();
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  private async exchange<T>(name: string, params: string[], receive: Receive<T>): Promise<T> {
    while (this.writeGate) await this.writeGate;
    let conn = this.conn;
    if (!conn || conn.dead) {
      conn = await this.connection();
      while (this.writeGate) await this.writeGate;
      if (conn.dead) conn = await this.connection();
    }
    conn.write(formatMessage(name, params));
    return conn.expect(receive);
  }

  private async connection(): Promise<Conn> {
    if (this.closed) throw new IpcConnectionError('client closed');
    if (this.conn && !this.conn.dead) return this.conn;
    if (!this.connecting) {
      this.connecting = (async () => {
        try {
          const socket = await connectTo(this.address, this.opts.connectTimeoutMs ?? 5000);
          const conn = new Conn(socket, this.timeoutMs, formatAddress(this.address));
          if (this.opts.secret !== undefined) {
            conn.write(formatMessage('hello', [this.opts.secret]));
            void conn
              .expect(readReply)
              .then((r) => {
                if (!r.ok) conn.fail(new IpcConnectionError(`IPC handshake refused: ${r.params[0] ?? ''}`));
              })
              .catch(() => {});
          }
          this.conn = conn;
          return conn;
        } catch (err) {
          throw new IpcConnectionError(`cannot connect to ${formatAddress(this.address)}: ${(err as Error).message}`);
        } finally {
          this.connecting = null;
        }
      })();
    }
    return this.connecting;
  }
}

/** toIpcReply - a handler's reply as a client reads its first line. */
function toIpcReply(r: Reply): IpcReply {
  switch (r.kind) {
    case 'ok':
      return { ok: true, params: r.values };
    case 'error':
      return { ok: false, params: r.message === undefined ? [] : [r.message] };
    case 'raw':
      return { ok: true, params: r.extra ? [String(r.size), ...r.extra] : [String(r.size)] };
    case 'lines': {
      const first = r.lines[0];
      if (first?.name === 'ok') return { ok: true, params: first.params };
      if (first?.name === 'error') return { ok: false, params: first.params };
      return { ok: false, params: [`unexpected reply: ${first?.name ?? 'nothing'}`] };
    }
    case 'text':
      return readReplyText(r.text);
  }
}

function readReplyText(text: string | Buffer): IpcReply {
  const s = typeof text === 'string' ? text : text.toString('utf8');
  const end = s.indexOf('\n');
  const line = (end < 0 ? s : s.slice(0, end)).replace(/\r$/, '');
  try {
    const msg = parseMessage(line);
    if (msg.name === 'ok' || msg.name === 'error') return { ok: msg.name === 'ok', params: msg.params };
  } catch {
    // below
  }
  return { ok: false, params: [`unexpected reply: ${line.slice(0, 200)}`] };
}

/** listOf - a `list`-style reply of a direct call: the first line's answer and the item lines. */
function listOf<T>(r: Reply, parse: (line: string) => T): { reply: IpcReply; items: T[] } {
  const reply = toIpcReply(r);
  if (!reply.ok) return { reply, items: [] };
  let lines: string[];
  if (r.kind === 'lines') lines = r.lines.map((l) => formatMessage(l.name, l.params).slice(0, -2));
  else if (r.kind === 'text') lines = (typeof r.text === 'string' ? r.text : r.text.toString('utf8')).split('\n').map((l) => l.replace(/\r$/, ''));
  else throw new CodecError('not a list reply');
  const count = Number(reply.params[0]);
  if (!Number.isSafeInteger(count) || count < 0 || lines.length < count + 2) throw new CodecError(`bad list count ${reply.params[0]}`);
  return { reply, items: lines.slice(1, count + 1).map(parse) };
}

/** streamOf - a `retr`-style reply of a direct call, its bytes as a stream. */
function streamOf(r: Reply): StreamResult {
  const reply = toIpcReply(r);
  if (r.kind !== 'raw') return { reply, size: 0 };
  return { reply, size: r.size, stream: Buffer.isBuffer(r.body) ? Readable.from([r.body], { objectMode: false }) : r.body };
}

/** rawOf - a `retr`-style reply of a direct call: the bytes gathered (a stream read to its end). */
async function rawOf(r: Reply): Promise<{ reply: IpcReply; data?: Buffer }> {
  if (r.kind !== 'raw') return { reply: toIpcReply(r) };
  if (Buffer.isBuffer(r.body)) return { reply: toIpcReply(r), data: r.body };
  const pieces: Buffer[] = [];
  let got = 0;
  for await (const chunk of r.body) {
    const b = chunk as Buffer;
    got += b.length;
    if (got > r.size) throw new CodecError('raw body longer than announced');
    pieces.push(b);
  }
  if (got !== r.size) throw new CodecError('raw body shorter than announced');
  return { reply: toIpcReply(r), data: Buffer.concat(pieces, got) };
}

async function readLine(reader: FrameReader): Promise<string> {
  const line = await reader.readLine();
  if (line === null) throw new IpcConnectionError('connection closed before the reply');
  return line;
}

/** readReply - one `ok`/`error` line; anything else counts as an error reply. */
export async function readReply(reader: FrameReader): Promise<IpcReply> {
  const line = await readLine(reader);
  let msg: Message;
  try {
    msg = parseMessage(line);
  } catch {
    return { ok: false, params: [`malformed reply: ${line.slice(0, 200)}`] };
  }
  if (msg.name === 'ok') return { ok: true, params: msg.params };
  if (msg.name === 'error') return { ok: false, params: msg.params };
  return { ok: false, params: [`unexpected reply: ${line.slice(0, 200)}`] };
}

async function writeBody(conn: Conn, body: Buffer | Readable, size: number): Promise<void> {
  if (Buffer.isBuffer(body)) {
    if (body.length > 0 && !conn.write(body)) await drained(conn.socket);
    return;
  }
  let sent = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    sent += buf.length;
    if (sent > size) throw new Error('store body longer than its length');
    if (!conn.write(buf)) await drained(conn.socket);
  }
  if (sent !== size) throw new Error(`store body is ${sent} bytes, announced ${size}`);
}

function drained(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', closed);
      resolve();
    };
    const closed = (): void => {
      socket.off('drain', done);
      reject(new IpcConnectionError('connection closed while sending'));
    };
    socket.on('drain', done);
    socket.on('close', closed);
  });
}

/** toReadable - wrap a Buffer as a stream (for APIs that take either). */
export function toReadable(data: Buffer): Readable {
  return Readable.from([data]);
}
