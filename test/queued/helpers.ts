// Helpers for queued tests: a raw line socket (to check bytes on the wire), a started queued,
// and a tiny subscriber that records the alerts it receives.

import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync } from 'node:fs';

import { type IpcClient, IpcServer, ok } from '../../src/ipc/index.js';
import type { Config } from '../../src/config/schema.js';
import { silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { start } from '../../src/queued/index.js';

/** RawLine - a plain socket: write exact bytes, read exact CRLF-terminated lines. */
export class RawLine {
  private buf = '';
  private waiters: Array<() => void> = [];
  private closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** connect - a raw connection; with SECRET, opened with `hello: SECRET` as DESIGN.md says. */
  static async connect(address: string, secret?: string): Promise<RawLine> {
    const p = address.replace(/^unix:\/\//, '');
    const raw = await new Promise<RawLine>((resolve, reject) => {
      const s = net.connect(p, () => resolve(new RawLine(s)));
      s.once('error', reject);
    });
    if (secret !== undefined) {
      const reply = await raw.exchange(`hello: ${secret}\r\n`);
      if (reply !== 'ok\r\n') throw new Error(`hello refused: ${reply}`);
    }
    return raw;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** line - the next line, CRLF included, exactly as received (10 s at most). */
  async line(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.buf.indexOf('\n');
      if (i >= 0) {
        const l = this.buf.slice(0, i + 1);
        this.buf = this.buf.slice(i + 1);
        return l;
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('no line within timeout');
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async exchange(text: string): Promise<string> {
    this.send(text);
    return this.line();
  }

  close(): void {
    this.socket.destroy();
  }
}

export async function startQueued(config: Config): Promise<RunningServer> {
  return start({ config, logger: silentLogger() });
}

/** Subscriber - an IPC server answering `alert` with ok and counting what it got (SECRET required). */
export async function startSubscriber(address: string, secret?: string): Promise<{ alerts: string[]; times: number[]; server: IpcServer; address: string }> {
  const alerts: string[] = [];
  /** When each alert came (epoch ms). */
  const times: number[] = [];
  const server = new IpcServer({ serverName: 'sub', version: '0', logger: silentLogger(), secret });
  server.on('alert', {
    params: 1,
    handle: (c) => {
      alerts.push(c.params[0]!);
      times.push(Date.now());
      return ok();
    },
  });
  const bound = await server.listen(address);
  return { alerts, times, server, address: bound };
}

export function writeSlot(p: string, data: string | Buffer): void {
  writeFileSync(p, data);
}

/** putMessage - `slot` then `put` of DATA into QUEUE (asserted ok); the slot path, which is the message's path. */
export async function putMessage(c: IpcClient, queue: string, data: Buffer): Promise<string> {
  const s = await c.request('slot', [queue]);
  assert.ok(s.ok, String(s.params));
  const r = await c.store('put', [queue, s.params[0]!, String(data.length)], data);
  assert.ok(r.ok, String(r.params));
  return s.params[0]!;
}
