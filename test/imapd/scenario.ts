// Scenario files for IMAP: a script of commands on named connections, replayed over raw sockets
// against one server, giving each step's responses (in canonical form, see scenario-normalise.ts)
// so the replays against two servers can be compared step by step.
//
// The file format (fixtures/dovecot-scenario.txt):
//   # comment                    (and blank lines) are skipped
//   message NAME [noeol]         a message: the lines up to a lone `.`, joined with CRLF
//                                (noeol: no CRLF after the last line; `..` stands for `.`)
//   A COMMAND ...                COMMAND sent with a tag on connection A (opened at first use);
//                                $user and $pass are the account the test gives
//                                `{+NAME}` in it is message NAME as a LITERAL+ literal,
//                                `{NAME}` as a synchronising one (sent after the server's `+`)
//   A IDLE                       IDLE: the step ends at the continuation; the responses that
//   A wait REGEX                 follow (REGEX waits, up to 10 s, for an untagged response
//   A DONE                       matching it) are the DONE step's, up to IDLE's tagged reply
//   deliver NAME                 message NAME delivered to $user by the server's own delivery
//                                path (mailboxd, dovecot-lda)

import { readFileSync } from 'node:fs';
import net from 'node:net';

import { Normaliser } from './scenario-normalise.js';

export interface Scenario {
  messages: Map<string, Buffer>;
  steps: Step[];
}

export type Step =
  | { kind: 'command'; line: number; conn: string; text: string }
  | { kind: 'wait'; line: number; conn: string; pattern: RegExp }
  | { kind: 'deliver'; line: number; message: string };

/** The server a scenario runs against. */
export interface Target {
  port: number;
  deliver(user: string, body: Buffer): Promise<void> | void;
}

/** What one step got back: canonical lines, and the raw ones for diagnosis. */
export interface StepResult {
  line: number;
  what: string;
  canonical: string[];
  raw: string[];
  ms: number;
}

export function loadScenario(file: string): Scenario {
  const lines = readFileSync(file, 'utf8').split('\n');
  const sc: Scenario = { messages: new Map(), steps: [] };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    const no = i + 1;
    if (!line.trim() || line.startsWith('#')) continue;
    let m: RegExpExecArray | null;
    if ((m = /^message (\S+)( noeol)?$/.exec(line))) {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== '.'; i++) body.push(lines[i]!.replace(/^\.\./, '.'));
      if (i >= lines.length) throw new Error(`line ${no}: message ${m[1]} has no closing "."`);
      sc.messages.set(m[1]!, Buffer.from(body.join('\r\n') + (m[2] ? '' : '\r\n'), 'utf8'));
    } else if ((m = /^deliver (\S+)$/.exec(line))) {
      if (!sc.messages.has(m[1]!)) throw new Error(`line ${no}: no message ${m[1]}`);
      sc.steps.push({ kind: 'deliver', line: no, message: m[1]! });
    } else if ((m = /^([A-Z]) wait (.+)$/.exec(line))) {
      sc.steps.push({ kind: 'wait', line: no, conn: m[1]!, pattern: new RegExp(m[2]!, 'i') });
    } else if ((m = /^([A-Z]) (.+)$/.exec(line))) {
      for (const ref of m[2]!.matchAll(/\{\+?([a-z][a-z0-9-]*)\}/g)) if (!sc.messages.has(ref[1]!)) throw new Error(`line ${no}: no message ${ref[1]}`);
      sc.steps.push({ kind: 'command', line: no, conn: m[1]!, text: m[2]! });
    } else {
      throw new Error(`line ${no}: cannot read ${JSON.stringify(line)}`);
    }
  }
  return sc;
}

/** RawConn - a connection that yields whole responses (literals included) as latin1 text. */
class RawConn {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.wake?.();
    });
    const end = (): void => {
      this.ended = true;
      this.wake?.();
    };
    sock.on('close', end);
    sock.on('error', end);
  }

  static async open(port: number): Promise<RawConn> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return new RawConn(sock);
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** response - the next whole response, or null when none comes within ms. */
  async response(ms: number): Promise<string | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const end = responseEnd(this.buf);
      if (end >= 0) {
        const r = this.buf.toString('latin1', 0, end - 2);
        this.buf = this.buf.subarray(end);
        return r;
      }
      if (this.ended) throw new Error(`connection closed (pending ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))})`);
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, Math.min(left, 250)).unref();
      });
      this.wake = null;
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

/** responseEnd - where the first complete response in BUF ends (after its CRLF), or -1. */
function responseEnd(buf: Buffer): number {
  let from = 0;
  for (;;) {
    const i = buf.indexOf('\r\n', from);
    if (i < 0) return -1;
    const m = /\{([0-9]+)\}$/.exec(buf.toString('latin1', Math.max(from, i - 20), i));
    if (!m) return i + 2;
    from = i + 2 + Number(m[1]);
    if (from > buf.length) return -1;
  }
}

const STEP_MS = 10_000;

/**
 * replay - run the scenario against one server; every step's responses, canonical. A step
 * that fails (no answer in time, connection lost) throws, naming the scenario line.
 */
export async function replay(sc: Scenario, target: Target, account: { user: string; pass: string }): Promise<StepResult[]> {
  const norm = new Normaliser();
  const conns = new Map<string, { c: RawConn; n: number; idleTag: string | null; pending: string[] }>();
  const results: StepResult[] = [];
  const expand = (s: string): string => s.replaceAll('$user', account.user).replaceAll('$pass', account.pass);
  try {
    for (const step of sc.steps) {
      const t0 = Date.now();
      const push = (what: string, raw: string[], command = ''): void => {
        results.push({ line: step.line, what, raw, canonical: norm.step(raw, command), ms: Date.now() - t0 });
      };
      if (step.kind === 'deliver') {
        await target.deliver(account.user, sc.messages.get(step.message)!);
        push(`deliver ${step.message}`, []);
        continue;
      }
      let conn = conns.get(step.conn);
      if (!conn) {
        const c = await RawConn.open(target.port);
        const greeting = await c.response(STEP_MS);
        if (greeting === null) throw new Error(`line ${step.line}: no greeting`);
        conn = { c, n: 0, idleTag: null, pending: [] };
        conns.set(step.conn, conn);
        push(`${step.conn} (greeting)`, [greeting]);
      }
      const at = `line ${step.line} (${step.kind === 'wait' ? 'wait' : step.text.slice(0, 60)})`;
      if (step.kind === 'wait') {
        // Responses while idling: gathered until one matches, reported with the DONE step.
        for (;;) {
          const r = await conn.c.response(STEP_MS - (Date.now() - t0));
          if (r === null) throw new Error(`${at}: nothing matching ${step.pattern} within ${STEP_MS} ms (got ${JSON.stringify(conn.pending)})`);
          conn.pending.push(r);
          if (step.pattern.test(r)) break;
        }
        results.push({ line: step.line, what: `${step.conn} wait ${step.pattern.source}`, raw: [], canonical: [], ms: Date.now() - t0 });
        continue;
      }
      const text = expand(step.text);
      if (/^DONE$/i.test(text)) {
        if (!conn.idleTag) throw new Error(`${at}: DONE without IDLE`);
        conn.c.write('DONE\r\n');
        const raw = [...conn.pending, ...(await until(conn.c, conn.idleTag, at))];
        conn.idleTag = null;
        conn.pending = [];
        push(`${step.conn} DONE`, raw);
        continue;
      }
      const tag = `${step.conn.toLowerCase()}${++conn.n}`;
      // Literals: LITERAL+ ones go with the line, synchronising ones after the server's `+`.
      const pieces = text.split(/(\{\+?[a-z][a-z0-9-]*\})/);
      const raw: string[] = [];
      let out: Array<string | Buffer> = [`${tag} `];
      let done = false;
      for (const p of pieces) {
        const m = /^\{(\+?)([a-z][a-z0-9-]*)\}$/.exec(p);
        if (!m) {
          out.push(p);
          continue;
        }
        const body = sc.messages.get(m[2]!)!;
        if (m[1]) {
          out.push(`{${body.length}+}\r\n`, body);
          continue;
        }
        out.push(`{${body.length}}\r\n`);
        conn.c.write(Buffer.concat(out.map((x) => (typeof x === 'string' ? Buffer.from(x, 'utf8') : x))));
        out = [];
        const r = await conn.c.response(STEP_MS);
        if (r === null) throw new Error(`${at}: no continuation for the literal`);
        // The continuation is not recorded: refusing a command before or after its literal
        // is the server's choice (RFC 9051 §7.5).
        if (!r.startsWith('+')) {
          // Refused before the literal was sent: the command is over.
          raw.push(r);
          done = true;
          break;
        }
        out.push(body);
      }
      if (done) {
        push(`${step.conn} ${text}`, raw, text);
        continue;
      }
      out.push('\r\n');
      conn.c.write(Buffer.concat(out.map((x) => (typeof x === 'string' ? Buffer.from(x, 'utf8') : x))));
      if (/^IDLE$/i.test(text)) {
        raw.push(...(await until(conn.c, tag, at, true)));
        if (raw[raw.length - 1]!.startsWith('+')) conn.idleTag = tag;
      } else {
        raw.push(...(await until(conn.c, tag, at)));
      }
      push(`${step.conn} ${text}`, raw, text);
      if (/^LOGOUT$/i.test(text)) {
        conn.c.close();
        conns.delete(step.conn);
      }
    }
  } catch (err) {
    // The steps so far, for the report.
    throw Object.assign(err as Error, { partial: results });
  } finally {
    for (const { c } of conns.values()) c.close();
  }
  return results;
}

/** until - responses up to TAG's completion (or, with plus, a continuation request). */
async function until(c: RawConn, tag: string, at: string, plus = false): Promise<string[]> {
  const out: string[] = [];
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const r = await c.response(Math.max(1, deadline - Date.now()));
    if (r === null) throw new Error(`${at}: no tagged reply within ${STEP_MS} ms (got ${JSON.stringify(out)})`);
    out.push(r);
    if (r.startsWith(`${tag} `) || (plus && r.startsWith('+'))) return out;
  }
}
