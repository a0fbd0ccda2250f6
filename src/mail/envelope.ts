// The envelope block: what smtpd writes at the head of every `incoming` queue file, before the
// message itself, and what the router and smtp-out read back.
//
//   FMAIL-ENVELOPE 1
//   qid: 0KQ3M5V8A1B2
//   from: alice@example.test        (empty for the null sender <>)
//   rcpt: bob@example.test          (one line per recipient, in RCPT order)
//   client: 192.0.2.1
//   helo: mail.example.test
//   auth: alice@example.test        (empty when not authenticated)
//   time: 2026-11-25T14:00:00.000Z
//   <empty line>
//   <message bytes, exactly as received, with our Received: header first>
//
// Values are percent-encoded like IPC parameters, so no value can add a line.

import { type FileHandle, open } from 'node:fs/promises';

import { decodeParam, encodeParam } from '../ipc/codec.js';
import { readFileOnce } from '../shared/durable.js';

export const ENVELOPE_MAGIC = 'FMAIL-ENVELOPE 1';
/** Envelopes larger than this are refused (1,000 recipients of 254 bytes fit easily). */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;

export interface Envelope {
  qid: string;
  /** Envelope sender; '' is the null sender `<>`. */
  from: string;
  rcpt: string[];
  client: string;
  helo: string;
  /** Authenticated user, '' when none. */
  auth: string;
  /** ISO time the message was received. */
  time: string;
  /** Extra `key: value` fields kept for round trips (e.g. a bounce's `dsn`). */
  extra?: Record<string, string>;
}

export class EnvelopeError extends Error {}

/** formatEnvelope - the envelope block, blank line included. */
export function formatEnvelope(env: Envelope): Buffer {
  const lines = [ENVELOPE_MAGIC, `qid: ${encodeParam(env.qid)}`, `from: ${encodeParam(env.from)}`];
  for (const r of env.rcpt) lines.push(`rcpt: ${encodeParam(r)}`);
  lines.push(`client: ${encodeParam(env.client)}`, `helo: ${encodeParam(env.helo)}`, `auth: ${encodeParam(env.auth)}`, `time: ${encodeParam(env.time)}`);
  for (const [k, v] of Object.entries(env.extra ?? {})) {
    if (!/^[a-z][a-z0-9-]*$/.test(k)) throw new EnvelopeError(`bad envelope key ${k}`);
    lines.push(`${k}: ${encodeParam(v)}`);
  }
  return Buffer.from(lines.join('\n') + '\n\n', 'utf8');
}

/** parseEnvelope - the envelope and the byte offset where the message starts. */
export function parseEnvelope(data: Buffer): { envelope: Envelope; bodyOffset: number } {
  const end = data.indexOf('\n\n');
  if (end < 0 || end > MAX_ENVELOPE_BYTES) throw new EnvelopeError('no envelope block');
  const lines = data.toString('utf8', 0, end).split('\n');
  if (lines[0] !== ENVELOPE_MAGIC) throw new EnvelopeError('not a FancyMail queue file');
  const env: Envelope = { qid: '', from: '', rcpt: [], client: '', helo: '', auth: '', time: '' };
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 0) throw new EnvelopeError(`bad envelope line ${JSON.stringify(line)}`);
    const key = line.slice(0, colon);
    const value = decodeParam(line.slice(colon + 1).trim());
    switch (key) {
      case 'qid':
      case 'from':
      case 'client':
      case 'helo':
      case 'auth':
      case 'time':
        env[key] = value;
        break;
      case 'rcpt':
        env.rcpt.push(value);
        break;
      default:
        (env.extra ??= {})[key] = value;
    }
  }
  if (!env.qid) throw new EnvelopeError('envelope without qid');
  return { envelope: env, bodyOffset: end + 2 };
}

/** Queue files up to this size are read whole, in one hop (see readQueueFile). */
const READ_WHOLE_BYTES = 1024 * 1024;

/**
 * readQueueFile - the envelope of a queue file and, when the file is small, all its bytes (one
 * hop to the I/O pool instead of open, stat, read, close and a second read for the body).
 */
export async function readQueueFile(file: string): Promise<{ envelope: Envelope; bodyOffset: number; size: number; data: Buffer | null }> {
  const data = await readFileOnce(file, READ_WHOLE_BYTES);
  if (!data) return { ...(await readEnvelopeFile(file)), data: null };
  return { ...parseEnvelope(data), size: data.length, data };
}

/** readEnvelopeFile - parse the envelope at the head of a queue file without reading it all. */
export async function readEnvelopeFile(file: string): Promise<{ envelope: Envelope; bodyOffset: number; size: number }> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(file, 'r');
    const size = (await fh.stat()).size;
    let buf = Buffer.alloc(Math.min(size, 64 * 1024));
    let got = (await fh.read(buf, 0, buf.length, 0)).bytesRead;
    while (buf.subarray(0, got).indexOf('\n\n') < 0 && got < size && got < MAX_ENVELOPE_BYTES) {
      const bigger = Buffer.alloc(Math.min(size, buf.length * 4, MAX_ENVELOPE_BYTES + 2));
      buf.copy(bigger, 0, 0, got);
      buf = bigger;
      got += (await fh.read(buf, got, buf.length - got, got)).bytesRead;
    }
    const parsed = parseEnvelope(buf.subarray(0, got));
    return { ...parsed, size };
  } finally {
    await fh?.close();
  }
}
