// A minimal IMAP client for tests: raw lines in, responses out (literals read byte-exact and
// shown inline), a tagged command helper, STARTTLS, and raw writes for abuse tests.

import net from 'node:net';
import tls from 'node:tls';

export interface Tagged {
  /** The untagged lines (a literal is inlined after its `{N}` line break). */
  untagged: string[];
  /** The tagged completion line, e.g. `a1 OK [READ-WRITE] SELECT completed`. */
  done: string;
}

export class ImapTestClient {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;
  private n = 0;
  greeting = '';

  private constructor(private sock: net.Socket | tls.TLSSocket) {
    this.listen(sock);
  }

  private listen(sock: net.Socket | tls.TLSSocket): void {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.notify();
    });
    const end = (): void => {
      this.ended = true;
      this.notify();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  get closed(): boolean {
    return this.ended;
  }

  static async connect(port: number, opts: { tls?: boolean } = {}): Promise<ImapTestClient> {
    const sock = opts.tls ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      sock.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
      sock.once('error', reject);
    });
    const c = new ImapTestClient(sock);
    c.greeting = await c.response();
    return c;
  }

  /** response - the next response line, with any literals it carries inlined. */
  async response(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let out = '';
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const line = this.buf.toString('utf8', 0, i);
        const m = /\{([0-9]+)\}$/.exec(line);
        if (!m || this.buf.length >= i + 2 + Number(m[1])) {
          out += line;
          this.buf = this.buf.subarray(i + 2);
          if (!m) return out;
          const n = Number(m[1]);
          out += '\r\n' + this.buf.toString('utf8', 0, n);
          this.buf = this.buf.subarray(n);
          continue;
        }
      }
      if (this.ended) throw new Error(`connection closed (got: ${JSON.stringify(out + this.buf.toString())})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response in time (got: ${JSON.stringify(out + this.buf.toString())})`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, Math.min(left, 200)).unref();
      });
    }
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** command - send `TAG command` and gather everything up to its tagged completion. */
  async command(text: string, timeoutMs = 10_000): Promise<Tagged> {
    const tag = `t${++this.n}`;
    this.write(`${tag} ${text}\r\n`);
    return this.until(tag, timeoutMs);
  }

  async until(tag: string, timeoutMs = 10_000): Promise<Tagged> {
    const untagged: string[] = [];
    for (;;) {
      const r = await this.response(timeoutMs);
      if (r.startsWith(`${tag} `)) return { untagged, done: r };
      untagged.push(r);
    }
  }

  /** ok - command, and assert it completed OK. */
  async ok(text: string): Promise<Tagged> {
    const r = await this.command(text);
    if (!/^t[0-9]+ OK/.test(r.done)) throw new Error(`${text} -> ${r.done}`);
    return r;
  }

  async starttls(): Promise<void> {
    const r = await this.command('STARTTLS');
    if (!r.done.includes(' OK')) throw new Error(r.done);
    const secure = tls.connect({ socket: this.sock as net.Socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.sock.removeAllListeners('data');
    this.sock = secure;
    this.listen(secure);
  }

  close(): void {
    this.sock.destroy();
  }
}
