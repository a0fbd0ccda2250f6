// IPC replies - what a handler returns; the server turns each into wire lines (and raw bytes).

import type { Readable } from 'node:stream';

import type { Message } from './codec.js';

export type Reply =
  /** `ok` or `ok: v1 ; v2` */
  | { kind: 'ok'; values: string[] }
  /** `error` or `error: message` */
  | { kind: 'error'; message?: string }
  /** several lines in a row, e.g. `ok: 2`, `mailinfo: ...`, `ok` (the `list` style) */
  | { kind: 'lines'; lines: Message[] }
  /** `ok: SIZE [; extra...]` followed by exactly SIZE raw bytes (the `retr` style) */
  | { kind: 'raw'; size: number; body: Buffer | Readable; extra?: string[] }
  /** wire text already formatted by the handler (a long `list` built in one string) */
  | { kind: 'text'; text: string | Buffer };

export const ok = (...values: string[]): Reply => ({ kind: 'ok', values });
export const error = (message?: string): Reply => ({ kind: 'error', message });

/**
 * failure - `error: X.Y.Z text`: an error that starts with an RFC 3463 enhanced status code, so
 * the caller decides by its class (4 = try again later, 5 = permanent) instead of by its words.
 */
export const failure = (status: string, text: string): Reply => ({ kind: 'error', message: `${status} ${text}` });

/** multiLine - `ok: COUNT`, one line per item, then `ok`. */
export function multiLine(items: Message[]): Reply {
  return {
    kind: 'lines',
    lines: [{ name: 'ok', params: [String(items.length)] }, ...items, { name: 'ok', params: [] }],
  };
}

/** preformatted - lines the handler formatted itself (each ending in CRLF, parameters encoded). */
export function preformatted(text: string | Buffer): Reply {
  return { kind: 'text', text };
}

/** rawData - `ok: SIZE [; EXTRA...]` then the bytes; `size` must be the exact byte count of `body`. */
export function rawData(body: Buffer | Readable, size?: number, extra?: string[]): Reply {
  if (Buffer.isBuffer(body)) return { kind: 'raw', size: body.length, body, extra };
  if (size === undefined) throw new Error('rawData: a stream body needs its size');
  return { kind: 'raw', size, body, extra };
}

/** The answer a client reads back: `ok`/`error` and its decoded parameters. */
export interface IpcReply {
  ok: boolean;
  params: string[];
}

/** replyText - first parameter of a reply, or '' (the value of `ok: v` or text of `error: m`). */
export function replyText(r: IpcReply): string {
  return r.params[0] ?? '';
}

/** The enhanced status code at the head of an `error: X.Y.Z text` reply. */
const STATUS_RE = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

export interface ErrorStatus {
  /** `5.2.2`; `4.0.0` when the error carries no code (a server that predates them: retry). */
  status: string;
  permanent: boolean;
  /** The text after the code. */
  text: string;
}

/** errorStatus - the status code and text of an `error` reply (or of its message text). */
export function errorStatus(r: IpcReply | string): ErrorStatus {
  const message = typeof r === 'string' ? r : (r.params[0] ?? '');
  const m = STATUS_RE.exec(message);
  if (!m) return { status: '4.0.0', permanent: false, text: message };
  return { status: `${m[1]}.${m[2]}.${m[3]}`, permanent: m[1] === '5', text: message.slice(m[0].length).trim() };
}

/** errnoStatus - the status for a failed file operation: a full disk is 4.3.1, the rest 4.3.0. */
export function errnoStatus(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? '4.3.1' : '4.3.0';
}
