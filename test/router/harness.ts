// Test harness for router and smtp-out: the real authd, queued, mailboxd, smtp-out and router
// in-process (startSystem), a log that tests can wait on, a way to put a message into
// `incoming` as smtpd would, and Maildir readers. Also a scriptable SMTP sink (smtp-server).

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

import { type System, startSystem } from '../../src/cli/start.js';
import type { Config } from '../../src/config/schema.js';
import { formatEnvelope } from '../../src/mail/envelope.js';
import { newQueueId } from '../../src/mail/queue-id.js';
import { spoolMessage } from '../../src/mail/spool.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

type Overrides = Parameters<typeof testConfig>[1];
export type LogLine = Record<string, unknown> & { event?: string; qid?: string };

export interface Fancy {
  dir: string;
  config: Config;
  system: System;
  logs: LogLine[];
  /** Queue a message into `incoming` as smtpd does; resolves with its qid. */
  inject(from: string, rcpt: string[], message: Buffer | string, extra?: Record<string, string>): Promise<string>;
  maildir(user: string): Buffer[];
  waitLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /**
   * settled - wait until no message is ready, leased or being written in any queue (deferred
   * ones may wait): whatever the system was going to do with its mail is done, so a test may
   * then check that something did NOT happen (no second copy, no bounce) without a sleep.
   */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export const USERS = ['alice@example.test', 'bob@example.test', 'postmaster@example.test'];

/** startFancy - every server but smtpd/pop3d on unix sockets in a temp folder. */
export async function startFancy(overrides: Overrides = {}): Promise<Fancy> {
  const tmp = tempDir('fmail-router-');
  writeFileSync(path.join(tmp.dir, 'users'), USERS.map((u) => `${u}:{PLAIN}secret::::::`).join('\n') + '\n');
  const o = (overrides ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const config = testConfig(tmp.dir, {
    ...overrides,
    router: { poll_s: 0.3, retry_s: 1, max_retry_s: 2, ...o.router },
    smtp_out: { poll_s: 0.3, first_retry_s: 1, max_backoff_s: 2, connection_cache_s: 5, connect_timeout_s: 5, command_timeout_s: 20, ...o.smtp_out },
  } as Overrides);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      if (process.env.FMAIL_TEST_LOG) process.stderr.write(chunk);
      cb();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const system = await startSystem(config, logger, ['authd', 'queued', 'mailboxd', 'smtp-out', 'router']);
  const queued = testClient(config, config.ipc.queued, { timeoutMs: 10_000 });
  return {
    dir: tmp.dir,
    config,
    system,
    logs,
    async inject(from, rcpt, message, extra) {
      const env = { qid: '', from, rcpt, client: '127.0.0.1', helo: 'test', auth: '', time: new Date().toISOString(), extra };
      const out = await spoolMessage(queued, 'incoming', env, Buffer.isBuffer(message) ? message : Buffer.from(message, 'utf8'));
      return out.qid;
    },
    maildir(user) {
      const dir = path.join(tmp.dir, 'mail', user, 'new');
      let names: string[] = [];
      try {
        names = readdirSync(dir).sort();
      } catch {
        return [];
      }
      return names.map((n) => readFileSync(path.join(dir, n)));
    },
    waitLog(pred, timeoutMs = 20_000) {
      return waitFor(() => logs.find(pred), timeoutMs);
    },
    async settled(timeoutMs = 20_000) {
      await waitFor(
        async () => {
          const list = await queued.requestList('qlist', []);
          return list.reply.ok && list.items.every((m) => m.params[2] === 'deferred');
        },
        timeoutMs,
        50,
      );
    },
    async stop() {
      queued.close();
      await system.stop();
      tmp.cleanup();
    },
  };
}

export interface SinkMessage {
  from: string;
  to: string[];
  data: Buffer;
  session: number;
  /** The session was upgraded with STARTTLS. */
  tls: boolean;
  /** The AUTH user, if any. */
  user: string;
  /** When DATA ended (epoch ms). */
  at: number;
}

export interface Sink {
  port: number;
  messages: SinkMessage[];
  /** Connections opened so far. */
  connections: number;
  /** Decide the reply to DATA: null = 250, or an error reply [code, text]. */
  onData: ((n: number) => [number, string] | null) | null;
  /** Decide the reply to RCPT TO: null = 250. */
  onRcpt: ((addr: string) => [number, string] | null) | null;
  /** Milliseconds the reply to DATA is held back (a slow remote server). */
  dataDelayMs: number;
  /** Back to the defaults: every message accepted at once (call in beforeEach/finally). */
  reset(): void;
  close(): Promise<void>;
}

function smtpError(code: number, text: string): Error {
  const e = new Error(text) as Error & { responseCode: number };
  e.responseCode = code;
  return e;
}

/** startSink - an SMTP server on 127.0.0.1:0 recording what it receives. */
export async function startSink(opts: Partial<SMTPServerOptions> = {}): Promise<Sink> {
  let dataCount = 0;
  const sink: Sink = {
    port: 0,
    messages: [],
    connections: 0,
    onData: null,
    onRcpt: null,
    dataDelayMs: 0,
    reset() {
      sink.onData = null;
      sink.onRcpt = null;
      sink.dataDelayMs = 0;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    size: 0,
    ...opts,
    onConnect(_s, cb) {
      sink.connections++;
      cb();
    },
    onRcptTo(addr, _s, cb) {
      const r = sink.onRcpt?.(addr.address);
      cb(r ? smtpError(r[0], r[1]) : undefined);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => setTimeout(finish, sink.dataDelayMs));
      const finish = (): void => {
        const r = sink.onData?.(++dataCount);
        if (r) return cb(smtpError(r[0], r[1]));
        const s = session as unknown as { envelope: { mailFrom: { address: string } | false; rcptTo: { address: string }[] }; id: string; secure: boolean; user?: string };
        sink.messages.push({
          from: s.envelope.mailFrom ? s.envelope.mailFrom.address : '',
          to: s.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          session: Number.parseInt(s.id, 36) || 0,
          tls: Boolean(s.secure),
          user: s.user ?? '',
          at: Date.now(),
        });
        cb();
      };
    },
  });
  server.on('error', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  sink.port = (server.server.address() as AddressInfo).port;
  return sink;
}

/** message - a small RFC 5322 message with CRLF line ends. */
export function message(subject: string, body = 'Hello.\r\n', extraHeaders = ''): Buffer {
  return Buffer.from(
    `From: <alice@example.test>\r\nTo: <someone@example.test>\r\nSubject: ${subject}\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <${newQueueId()}@test>\r\n${extraHeaders}\r\n${body}`,
    'utf8',
  );
}

export { formatEnvelope };
