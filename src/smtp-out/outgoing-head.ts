// outgoing-head - what goes on top of a message as smtp-out copies it into `outgoing`:
// the check results smtpd recorded in the envelope (a forwarded message keeps them), then
// DKIM-Signature lines when the message is ours to sign: it came from an authenticated
// session (env.auth) or is one of our bounces (env dsn). Signed once per copy, so retries
// send the same bytes. A signing failure (unreadable key) is logged and the mail goes unsigned.

import { Readable } from 'node:stream';

import { fromDomain, type DkimSigner } from '../mail/auth/dkim-sign.js';
import { dkimSigned } from '../mail/auth/metrics.js';
import { prependOf } from '../mail/auth/prepend.js';
import type { Envelope } from '../mail/envelope.js';
import { fileBody } from '../mail/spool.js';
import type { Logger } from '../shared/log.js';

/** outgoingHead - the bytes to put before the message of FILE in its `outgoing` copy. */
export async function outgoingHead(signer: DkimSigner | null, logger: Logger, env: Envelope, file: string, bodyOffset: number): Promise<Buffer> {
  const top = prependOf(env);
  if (!signer || (!env.auth && !env.extra?.dsn)) return top;
  try {
    const header = await readHeaderBlock(file, bodyOffset);
    const domain = fromDomain(header);
    const message = Readable.from(
      (async function* () {
        if (top.length) yield top;
        yield* fileBody(file, bodyOffset);
      })(),
    );
    const { headers, keys } = await signer.sign(message, domain);
    if (!headers) {
      logger.debug({ event: 'smtp-out.dkim_none', qid: env.qid, domain }, 'no DKIM key for the From domain');
      return top;
    }
    for (const k of keys) dkimSigned.inc({ type: k.type });
    logger.info({ event: 'smtp-out.dkim_signed', qid: env.qid, domain: keys[0]!.domain, selectors: keys.map((k) => `${k.selector}:${k.type}`).join(',') }, 'DKIM-signed');
    return Buffer.concat([Buffer.from(headers, 'utf8'), top]);
  } catch (err) {
    logger.error({ event: 'smtp-out.dkim_failed', qid: env.qid, err: String(err) }, 'DKIM signing failed; sending unsigned');
    return top;
  }
}

async function readHeaderBlock(file: string, offset: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of fileBody(file, offset)) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    const all = Buffer.concat(chunks, n);
    const end = all.indexOf('\r\n\r\n');
    if (end >= 0 || n > 1024 * 1024) return all.subarray(0, end >= 0 ? end : n);
  }
  return Buffer.concat(chunks, n);
}
