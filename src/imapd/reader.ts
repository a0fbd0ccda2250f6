// CommandReader - IMAP commands off a socket: lines, and the literals ({N}, {N+}) inside them.
//
// A command is a line; a line ending in `{N}` or `{N+}` is followed by N raw bytes and then
// the rest of the command on a new line (RFC 9051 §4.3, RFC 7888). The session decides on
// each literal before any of its bytes is read: the size is checked against the limit for
// that command and refused at once when too big (synchronizing: a tagged NO and the client
// sends nothing; non-synchronizing: the bytes are coming anyway, so BYE and close). Lines
// are capped (overlong: BYE), and a line that is started must end within the line deadline
// (a slow-loris sending a byte a minute is cut off). Pipelined input waits in a buffer the
// socket stops filling past PAUSE_BYTES. detach() drops what is buffered: STARTTLS uses it
// so plaintext pipelined after the command never runs inside TLS (RFC 9051 §6.2.1).

import type { Duplex } from 'node:stream';

const PAUSE_BYTES = 256 * 1024;

export type LiteralVerdict = { ok: true } | { ok: false; response: string; close: boolean };

export interface LiteralPolicy {
  /** Asked for every literal: the command text so far, its size, whether it is {N+}, and the literal bytes the command already carries. */
  (textSoFar: string, size: number, nonSync: boolean, before: number): LiteralVerdict;
}

export type CommandRead =
  /** Text segments with the literals between them: text, literal, text, ... text. */
  | { kind: 'command'; parts: Array<string | Buffer> }
  /** A literal was refused (response already decided by the policy) or a line was too long. */
  | { kind: 'refused'; response: string; close: boolean }
  | { kind: 'timeout' }
  | null;

export type LineRead = { kind: 'line'; line: string } | { kind: 'too-long' } | { kind: 'timeout' } | null;

const LITERAL_RE = /\{([0-9]{1,20})(\+?)\}$/;

export class CommandReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private wake: (() => void) | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered > PAUSE_BYTES) this.socket.pause();
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  constructor(
    private socket: Duplex,
    private readonly limits: { maxLine(): number; lineDeadlineMs(): number },
    /** Sends the `+ ` go-ahead for a synchronizing literal. */
    private readonly goAhead: () => void,
  ) {
    this.attach(socket);
  }

  private attach(socket: Duplex): void {
    this.socket = socket;
    this.ended = false;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  /** detach - stop reading from the socket and forget whatever it had sent. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.chunks = [];
    this.buffered = 0;
  }

  /** reattach - read from a new socket (the TLS one after STARTTLS), starting empty. */
  reattach(socket: Duplex): void {
    this.detach();
    this.attach(socket);
  }

  /** hasBuffered - whether input is already waiting (pipelined commands). */
  hasBuffered(): boolean {
    return this.buffered > 0;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** more - wait for data or the end; false when the deadline passed first. */
  private more(deadline: number | null): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      this.wake = () => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
      if (deadline !== null) {
        timer = setTimeout(() => {
          this.wake = null;
          resolve(false);
        }, Math.max(0, deadline - Date.now()));
      }
      if (this.socket.isPaused()) this.socket.resume();
    });
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private consume(n: number): void {
    const b = this.flat().subarray(n);
    this.chunks = b.length > 0 ? [b] : [];
    this.buffered = b.length;
  }

  /** readLine - one line without its CRLF (or LF), capped at maxLine bytes. */
  async readLine(maxLine = this.limits.maxLine()): Promise<LineRead> {
    let deadline: number | null = null;
    let scanned = 0;
    for (;;) {
      if (this.buffered > 0) {
        const buf = this.flat();
        const lf = buf.indexOf(10, scanned);
        if (lf >= 0) {
          if (lf + 1 > maxLine) return { kind: 'too-long' };
          const end = lf > 0 && buf[lf - 1] === 13 ? lf - 1 : lf;
          const line = buf.toString('utf8', 0, end);
          this.consume(lf + 1);
          return { kind: 'line', line };
        }
        if (buf.length >= maxLine) return { kind: 'too-long' };
        scanned = buf.length;
        // A line has begun: from now on it must be complete within the line deadline.
        if (deadline === null) deadline = Date.now() + this.limits.lineDeadlineMs();
      }
      if (this.ended) return null;
      if (!(await this.more(deadline))) return { kind: 'timeout' };
    }
  }

  /** readBytes - exactly n raw bytes (a literal), or null if the connection ended first. */
  async readBytes(n: number): Promise<Buffer | null> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (this.buffered > 0) {
        const head = this.chunks.shift()!;
        const take = Math.min(head.length, n - got);
        parts.push(take === head.length ? head : head.subarray(0, take));
        if (take < head.length) this.chunks.unshift(head.subarray(take));
        this.buffered -= take;
        got += take;
        continue;
      }
      if (this.ended) return null;
      await this.more(null);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** nextCommand - a whole command, its literals read as the policy allows. */
  async nextCommand(policy: LiteralPolicy): Promise<CommandRead> {
    const parts: Array<string | Buffer> = [];
    let text = '';
    let textBytes = 0;
    let literalBytes = 0;
    const maxLine = this.limits.maxLine();
    for (;;) {
      const r = await this.readLine(maxLine - textBytes);
      if (r === null) return null;
      if (r.kind === 'timeout') return r;
      if (r.kind === 'too-long') return { kind: 'refused', response: '* BYE Command line too long', close: true };
      textBytes += Buffer.byteLength(r.line) + 2;
      parts.push(r.line);
      text += r.line;
      const m = LITERAL_RE.exec(r.line);
      if (!m) return { kind: 'command', parts };
      const size = Number(m[1]);
      const nonSync = m[2] === '+';
      const verdict = Number.isSafeInteger(size) ? policy(text, size, nonSync, literalBytes) : { ok: false as const, response: '* BYE Literal too large', close: true };
      if (!verdict.ok) return { kind: 'refused', response: verdict.response, close: verdict.close || nonSync };
      if (!nonSync) this.goAhead();
      const data = await this.readBytes(size);
      if (data === null) return null;
      parts.push(data);
      literalBytes += size;
      text += ' ';
    }
  }
}
