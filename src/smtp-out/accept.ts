// accept - the `send: FROM ; TO ; SLOT` handler: take responsibility for one recipient of a
// queued message by copying it, with its own envelope, into the `outgoing` queue. `ok` is
// answered only after queued holds the copy durably, so the caller may then `done` its file.

import path from 'node:path';

import type { IpcClient, Reply } from '../ipc/index.js';
import { errnoStatus, failure, ok } from '../ipc/index.js';
import { domainOf, normalizeAddress } from '../mail/address.js';
import { type Envelope, readEnvelopeFile } from '../mail/envelope.js';
import { fileBody, spoolMessage } from '../mail/spool.js';
import type { Logger } from '../shared/log.js';

export interface AcceptDeps {
  queued: IpcClient;
  /** The queued spool folder: SLOT must lie inside it (smtp-out reads no other file). */
  spoolDir: string;
  logger: Logger;
}

/** acceptSend - copy SLOT into `outgoing` for recipient TO; the reply to the `send` request. */
export async function acceptSend(deps: AcceptDeps, fromParam: string, toParam: string, slot: string): Promise<Reply> {
  const from = fromParam === '<>' ? '' : normalizeAddress(fromParam);
  const to = normalizeAddress(toParam);
  if (!domainOf(to) || /[\s<>]/.test(to)) return failure('5.1.3', `bad recipient ${JSON.stringify(toParam)}`);
  if (/[\s<>]/.test(from)) return failure('5.1.7', `bad sender ${JSON.stringify(fromParam)}`);
  const file = path.resolve(slot);
  if (!file.startsWith(path.resolve(deps.spoolDir) + path.sep)) return failure('5.5.4', 'slot is not a queue file');
  let parsed;
  try {
    parsed = await readEnvelopeFile(file);
  } catch (err) {
    return failure('4.3.0', `cannot read slot: ${(err as Error).message}`);
  }
  const src = parsed.envelope;
  const extra: Record<string, string> = {};
  if (src.extra?.dsn) extra.dsn = src.extra.dsn;
  if (await hasEightBit(file, parsed.bodyOffset)) extra['eight-bit'] = '1';
  const env: Envelope = {
    qid: src.qid,
    from,
    rcpt: [to],
    client: src.client,
    helo: src.helo,
    auth: src.auth,
    time: src.time || new Date().toISOString(),
    extra,
  };
  let copy: { file: string; qid: string };
  try {
    copy = await spoolMessage(deps.queued, 'outgoing', env, fileBody(file, parsed.bodyOffset));
  } catch (err) {
    deps.logger.warn({ event: 'smtp-out.accept_failed', qid: src.qid, rcpt: to, err: String(err) }, 'cannot queue for delivery');
    return failure(errnoStatus(err), `cannot queue: ${(err as Error).message}`);
  }
  deps.logger.info({ event: 'smtp-out.queued', qid: src.qid, rcpt: to, from, slot: path.basename(copy.file) }, 'queued for remote delivery');
  return ok();
}

/** hasEightBit - does the message contain bytes above 127 (decides BODY=8BITMIME)? */
async function hasEightBit(file: string, offset: number): Promise<boolean> {
  for await (const chunk of fileBody(file, offset)) {
    if (/[\x80-\xff]/.test((chunk as Buffer).toString('latin1'))) return true;
  }
  return false;
}
