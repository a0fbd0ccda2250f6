// Test harness for smtpd: fake authd and queued (small IpcServers on Unix sockets), smtpd
// started in-process on ephemeral ports, a raw SMTP client, and a queue-file reader.

import { mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

import type { Config } from '../../src/config/schema.js';
import { IpcServer, error, ok } from '../../src/ipc/index.js';
import { type Envelope, parseEnvelope } from '../../src/mail/envelope.js';
import { newQueueId } from '../../src/mail/queue-id.js';
import { silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { start } from '../../src/smtpd/index.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

type Overrides = Parameters<typeof testConfig>[1];

export const USERS: Record<string, string> = { 'alice@example.test': 'secret', 'bob@example.test': 'hunter2' };
export const ALIASES: Record<string, string[]> = { 'sales@example.test': ['alice@example.test'] };

export interface FakeQueued {
  pushed: string[];
  slots: string[];
  failSlot: boolean;
  failPush: boolean;
}

export interface Harness {
  dir: string;
  config: Config;
  smtpd: RunningServer;
  queued: FakeQueued;
  authCalls: string[][];
  port(role: 'smtp' | 'submission' | 'submissions'): number;
  stopQueued(): Promise<void>;
  close(): Promise<void>;
}

/** startHarness - fake authd + queued, then smtpd with test-friendly limits. */
export async function startHarness(overrides: Overrides = {}): Promise<Harness> {
  const tmp = tempDir('fmail-smtpd-');
  const config = testConfig(tmp.dir, {
    ...overrides,
    smtpd: { host: '127.0.0.1', port: 0, submission_port: 0, submissions_port: 0, auth_failure_delay_ms: 50, ...(overrides.smtpd ?? {}) },
  });
  const logger = silentLogger();
  const authCalls: string[][] = [];

  const authd = new IpcServer({ serverName: 'authd', version: '0', logger });
  const resolve = (a: string): string[] => {
    const k = a.toLowerCase();
    if (USERS[k]) return [k];
    return ALIASES[k] ?? [];
  };
  authd.on('verify', { params: 1, handle: (c) => (resolve(c.params[0]!).length ? ok() : error('no such user')) });
  authd.on('resolve', { params: 1, handle: (c) => (resolve(c.params[0]!).length ? ok(...resolve(c.params[0]!)) : error('no such user')) });
  authd.on('domain', { params: 1, handle: (c) => (c.params[0]!.toLowerCase() === 'example.test' ? ok() : error('not local')) });
  authd.on('auth', {
    params: [2, 3],
    handle: (c) => {
      authCalls.push(c.params);
      const u = c.params[0]!.toLowerCase();
      return USERS[u] !== undefined && USERS[u] === c.params[1] ? ok(u) : error('authentication failed');
    },
  });
  await authd.listen(config.ipc.authd);

  const spool = path.join(tmp.dir, 'queue', 'incoming');
  mkdirSync(spool, { recursive: true });
  const fq: FakeQueued = { pushed: [], slots: [], failSlot: false, failPush: false };
  const queued = new IpcServer({ serverName: 'queued', version: '0', logger });
  queued.on('slot', {
    params: 1,
    handle: (c) => {
      if (fq.failSlot || c.params[0] !== 'incoming') return error('no slot');
      const p = path.join(spool, newQueueId());
      fq.slots.push(p);
      return ok(p);
    },
  });
  queued.on('push', {
    params: [2, 3],
    handle: (c) => {
      if (fq.failPush || !fq.slots.includes(c.params[1]!)) return error('push failed');
      fq.pushed.push(c.params[1]!);
      return ok();
    },
  });
  await queued.listen(config.ipc.queued);

  const smtpd = await start({ config, logger });
  let queuedUp = true;
  return {
    dir: tmp.dir,
    config,
    smtpd,
    queued: fq,
    authCalls,
    port: (role) => Number(smtpd.addresses[role]!.split(':').pop()),
    stopQueued: async () => {
      queuedUp = false;
      await queued.close(100);
    },
    close: async () => {
      await smtpd.close();
      await authd.close(100);
      if (queuedUp) await queued.close(100);
      tmp.cleanup();
    },
  };
}

export interface Reply {
  code: number;
  lines: string[];
  text: string;
}

/** RawSmtp - a byte-level SMTP client: writes exactly what it is told, reads replies in order. */
export class RawSmtp {
  private buf = '';
  private waiter: (() => void) | null = null;
  closed = false;
  /** Everything received, for transcripts. */
  transcript = '';

  private constructor(public socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      const s = d.toString('latin1');
      this.buf += s;
      this.transcript += s;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, secure = false): Promise<RawSmtp> {
    const socket = secure
      ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      : net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(secure ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawSmtp(socket);
  }

  /** reply - the next complete (possibly multi-line) reply. */
  async reply(timeoutMs = 20_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed; transcript:\n${this.transcript}`);
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; transcript:\n${this.transcript}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  private take(): Reply | null {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const eol = this.buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const line = this.buf.slice(pos, eol);
      pos = eol + 2;
      lines.push(line);
      if (line[3] !== '-') {
        this.buf = this.buf.slice(pos);
        return { code: Number(line.slice(0, 3)), lines, text: lines.join('\n') };
      }
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  async cmd(line: string): Promise<Reply> {
    this.write(line + '\r\n');
    return this.reply();
  }

  /** starttls - upgrade after a 220 to STARTTLS (the caller sends the command). */
  async upgrade(): Promise<void> {
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.buf = '';
    this.socket = secure;
    this.attach(secure);
  }

  /** waitClosed - true once the server closed the connection (bounded). */
  async waitClosed(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** greet - connect, read 220, EHLO; returns the client and the EHLO reply. */
export async function greet(port: number, opts: { secure?: boolean; helo?: string } = {}): Promise<{ c: RawSmtp; ehlo: Reply }> {
  const c = await RawSmtp.connect(port, opts.secure);
  const hello = await c.reply();
  if (hello.code !== 220) throw new Error(`greeting: ${hello.text}`);
  const ehlo = await c.cmd(`EHLO ${opts.helo ?? 'client.example.net'}`);
  return { c, ehlo };
}

/** authPlain - AUTH PLAIN with an initial response. */
export function plainToken(user: string, pass: string): string {
  return Buffer.from(`\0${user}\0${pass}`).toString('base64');
}

export interface QueuedMessage {
  envelope: Envelope;
  /** The Received header we added (with its CRLF). */
  received: string;
  /** The message after the Received header, byte for byte. */
  body: Buffer;
  raw: Buffer;
}

/** readQueued - split a queue file into envelope, Received header and message. */
export function readQueued(file: string): QueuedMessage {
  const raw = readFileSync(file);
  const { envelope, bodyOffset } = parseEnvelope(raw);
  const rest = raw.subarray(bodyOffset);
  // The Received header ends at the first CRLF not followed by a folding tab.
  let end = 0;
  for (;;) {
    const eol = rest.indexOf('\r\n', end);
    if (eol < 0) throw new Error('no Received header end');
    end = eol + 2;
    if (rest[end] !== 0x09) break;
  }
  return { envelope, received: rest.subarray(0, end).toString('utf8'), body: rest.subarray(end), raw };
}

/** sendMessage - MAIL/RCPT/DATA of one message (wire bytes, ending in CRLF); the final reply. */
export async function sendMessage(c: RawSmtp, from: string, rcpts: string[], data: Buffer | string): Promise<Reply> {
  let r = await c.cmd(`MAIL FROM:<${from}>`);
  if (r.code !== 250) return r;
  for (const to of rcpts) {
    r = await c.cmd(`RCPT TO:<${to}>`);
    if (r.code !== 250) return r;
  }
  r = await c.cmd('DATA');
  if (r.code !== 354) return r;
  c.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  c.write('.\r\n');
  return c.reply();
}

/** dotStuff - what a client puts on the wire for these message bytes (CRLF lines). */
export function dotStuff(msg: Buffer): Buffer {
  const s = msg.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(s, 'latin1');
}
