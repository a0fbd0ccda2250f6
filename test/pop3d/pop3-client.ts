// A minimal POP3 client for tests: single-line replies as text, multi-line bodies as exact
// bytes (dot-unstuffed), STLS upgrade, and raw writes for pipelining and abuse tests.

import net from 'node:net';
import tls from 'node:tls';

export class Pop3TestClient {
  private buf = Buffer.alloc(0);
  /** Chunks received but not yet joined to buf (joining each one would be quadratic). */
  private pending: Buffer[] = [];
  private ended = false;
  private wake: (() => void) | null = null;
  greeting = '';

  private constructor(private sock: net.Socket | tls.TLSSocket) {
    this.listen(sock);
  }

  private listen(sock: net.Socket | tls.TLSSocket): void {
    sock.on('data', (d: Buffer) => {
      this.pending.push(d);
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

  /** crlf - index of the next CRLF in the received bytes, joining chunks only when needed. */
  private crlf(): number {
    let i = this.buf.indexOf('\r\n');
    if (i < 0 && this.pending.length > 0) {
      this.buf = Buffer.concat([this.buf, ...this.pending]);
      this.pending = [];
      i = this.buf.indexOf('\r\n');
    }
    return i;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  static async connect(port: number, opts: { tls?: boolean } = {}): Promise<Pop3TestClient> {
    const sock = opts.tls
      ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      : net.connect({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      sock.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
      sock.once('error', reject);
    });
    const c = new Pop3TestClient(sock);
    c.greeting = await c.line();
    return c;
  }

  /** line - the next reply line (without CRLF); '' with `closed` true at the end. */
  async line(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.crlf();
      if (i >= 0) {
        const l = this.buf.toString('utf8', 0, i);
        this.buf = this.buf.subarray(i + 2);
        return l;
      }
      if (this.ended) throw new Error(`connection closed (pending: ${JSON.stringify(this.buf.toString())})`);
      if (Date.now() > deadline) throw new Error('no reply in time');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200).unref();
      });
    }
  }

  /** body - the lines of a multi-line reply up to `.`, un-stuffed, each with its CRLF. */
  async body(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const i = await this.rawLineEnd();
      const line = this.buf.subarray(0, i);
      this.buf = this.buf.subarray(i + 2);
      if (line.length === 1 && line[0] === 0x2e) break;
      parts.push(line[0] === 0x2e ? line.subarray(1) : line, Buffer.from('\r\n'));
    }
    return Buffer.concat(parts);
  }

  /** rawUntilEnd - the bytes of a multi-line body as sent (stuffed), through `.` CRLF. */
  async rawUntilEnd(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const i = await this.rawLineEnd();
      const line = this.buf.subarray(0, i + 2);
      this.buf = this.buf.subarray(i + 2);
      parts.push(line);
      if (line.length === 3 && line[0] === 0x2e) break;
    }
    return Buffer.concat(parts);
  }

  private async rawLineEnd(): Promise<number> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const i = this.crlf();
      if (i >= 0) return i;
      if (this.ended) throw new Error('connection closed inside a multi-line reply');
      if (Date.now() > deadline) throw new Error('multi-line reply did not end in time');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200).unref();
      });
    }
  }

  async cmd(line: string): Promise<string> {
    this.write(line + '\r\n');
    return this.line();
  }

  /** multi - a command with a multi-line answer: [status line, body]. */
  async multi(line: string): Promise<[string, Buffer]> {
    const status = await this.cmd(line);
    if (!status.startsWith('+OK')) return [status, Buffer.alloc(0)];
    return [status, await this.body()];
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  async login(user: string, pass: string): Promise<string> {
    const u = await this.cmd(`USER ${user}`);
    if (!u.startsWith('+OK')) return u;
    return this.cmd(`PASS ${pass}`);
  }

  /** stls - STLS then the TLS handshake on the same connection. */
  async stls(): Promise<string> {
    const r = await this.cmd('STLS');
    if (!r.startsWith('+OK')) return r;
    await this.upgradeAfterStls();
    return r;
  }

  /** upgradeAfterStls - the TLS handshake, once the server said +OK to STLS. */
  async upgradeAfterStls(): Promise<void> {
    this.sock.removeAllListeners('data');
    const secure = tls.connect({ socket: this.sock as net.Socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.sock = secure;
    this.buf = Buffer.alloc(0);
    this.pending = [];
    this.listen(secure);
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** closed - resolves once the server has closed the connection (bounded). */
  async closed(timeoutMs = 20_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }

  close(): void {
    this.sock.destroy();
  }
}
