// prepend - header lines decided after a message was written, kept in its queue file's
// envelope and put on top of the message whenever it leaves the queue (local delivery, a copy
// for smtp-out). Like Postfix's cleanup, which records a milter's header edits in the queue
// file instead of rewriting the message.
//
// smtpd cannot know the Authentication-Results until the last byte of DATA, when the message
// is already on disk behind its envelope; so the envelope carries a blank `prepend:` field of
// fixed size (RESERVED bytes of spaces, which the envelope parser trims away), and the result
// is written into it in place before the file is fsynced.

import { encodeParam } from '../../ipc/codec.js';
import type { Envelope } from '../envelope.js';

export const PREPEND_KEY = 'prepend';
const RESERVED = 4096;
const LINE_START = `${PREPEND_KEY}:`;

/** reservePrepend - HEAD (envelope block, maybe more) with a blank `prepend:` field in its envelope; `at` is where it starts. */
export function reservePrepend(envelope: Buffer): { head: Buffer; at: number } {
  // The envelope block ends with its first "\n\n": the field goes between the two newlines.
  const end = envelope.indexOf('\n\n');
  if (end < 0) throw new Error('reservePrepend: no envelope block');
  const at = end + 1;
  const blank = Buffer.from(LINE_START + ' '.repeat(RESERVED - LINE_START.length - 1) + '\n', 'utf8');
  return { head: Buffer.concat([envelope.subarray(0, at), blank, envelope.subarray(at)]), at };
}

/** prependPatch - the bytes that fill the reserved field with HEADERS, or null when they do not fit. */
export function prependPatch(headers: string): Buffer | null {
  const line = `${LINE_START} ${encodeParam(headers)}`;
  const bytes = Buffer.byteLength(line, 'utf8');
  if (bytes > RESERVED - 1) return null;
  return Buffer.from(line + ' '.repeat(RESERVED - 1 - bytes) + '\n', 'utf8');
}

/** prependOf - the header lines to put on top of the message of ENV (empty when none). */
export function prependOf(env: Envelope): Buffer {
  const v = env.extra?.[PREPEND_KEY] ?? '';
  return v ? Buffer.from(v, 'utf8') : Buffer.alloc(0);
}
