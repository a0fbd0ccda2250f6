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
  /** `ok: SIZE` followed by exactly SIZE raw bytes (the `retr` style) */
  | { kind: 'raw'; size: number; body: Buffer | Readable };

export const ok = (...values: string[]): Reply => ({ kind: 'ok', values });
export const error = (message?: string): Reply => ({ kind: 'error', message });

/** multiLine - `ok: COUNT`, one line per item, then `ok`. */
export function multiLine(items: Message[]): Reply {
  return {
    kind: 'lines',
    lines: [{ name: 'ok', params: [String(items.length)] }, ...items, { name: 'ok', params: [] }],
  };
}

/** rawData - `ok: SIZE` then the bytes; `size` must be the exact byte count of `body`. */
export function rawData(body: Buffer | Readable, size?: number): Reply {
  if (Buffer.isBuffer(body)) return { kind: 'raw', size: body.length, body };
  if (size === undefined) throw new Error('rawData: a stream body needs its size');
  return { kind: 'raw', size, body };
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
