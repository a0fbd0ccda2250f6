// checks - the hook of mail authentication into smtpd's DATA (MX port only): the message
// streams into the checker while it is written to the spool (forged Authentication-Results
// filtered out on the way), and at the end the verdict either refuses the message (550) or
// fills the envelope's reserved `prepend` field with the headers (src/mail/auth/prepend.ts).
// Logs smtpd.checks (qid, spf, spf_helo, dkim, dmarc, arc, action) and counts the results.

import type { SMTPServerDataStream } from 'smtp-server';

import type { Config } from '../config/schema.js';
import { dnsFor } from '../mail/auth/dns.js';
import { type CheckFields, startCheck } from '../mail/auth/inbound.js';
import { authCheckSeconds, authResults } from '../mail/auth/metrics.js';
import { prependPatch, reservePrepend } from '../mail/auth/prepend.js';
import { StripOwnResults } from '../mail/auth/strip-results.js';
import type { Logger } from '../shared/log.js';
import type { Seal } from './spool-writer.js';

/** The longest the verdict may take after DATA (DNS timeouts bound each query; this bounds them all). */
const CHECK_DEADLINE_MS = 30_000;

export interface MessageChecks {
  head(head: (qid: string) => Buffer): (qid: string) => Buffer;
  filter: StripOwnResults;
  seal(): Promise<Seal>;
  /** After the spool outcome: the check fields, for the log line (undefined when not reached). */
  fields(): CheckFields | undefined;
}

/** startChecks - checks for one message of an MX session, fed from STREAM. */
export function startChecks(config: Config, logger: Logger, stream: SMTPServerDataStream, input: { ip: string; helo: string; mailFrom: string }): MessageChecks {
  const authservId = config.mail_auth.authserv_id || config.hostname;
  const check = startCheck(config.mail_auth, authservId, dnsFor(config.dns), input);
  stream.on('data', (c: Buffer) => check.write(c));
  stream.once('end', () => check.end());
  const filter = new StripOwnResults(authservId);
  let at = -1;
  let qid = '';
  let fields: CheckFields | undefined;
  return {
    head: (head) => (q) => {
      qid = q;
      const r = reservePrepend(head(q));
      at = r.at;
      return r.head;
    },
    filter,
    fields: () => fields,
    async seal() {
      const t0 = process.hrtime.bigint();
      let out;
      let timer: NodeJS.Timeout | undefined;
      try {
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no verdict within ${CHECK_DEADLINE_MS} ms`)), CHECK_DEADLINE_MS);
        });
        out = await Promise.race([check.result, deadline]);
      } catch (err) {
        check.abort();
        // A checker failure must not lose mail: deliver unmarked, say so.
        logger.warn({ event: 'smtpd.checks_failed', qid, err: String(err) }, 'mail checks failed');
        return null;
      } finally {
        clearTimeout(timer);
      }
      authCheckSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      fields = out.fields;
      for (const k of ['spf', 'spf_helo', 'dmarc', 'arc', 'action'] as const) authResults.inc({ check: k, result: out.fields[k] });
      for (const d of out.fields.dkim.split(',')) authResults.inc({ check: 'dkim', result: d.split(':')[0]! });
      logger.info({ event: 'smtpd.checks', qid, ...out.fields, forged_removed: filter.removed || undefined }, `spf=${out.fields.spf} dkim=${out.fields.dkim} dmarc=${out.fields.dmarc}`);
      if (out.reject) return { refuse: { code: 550, text: out.reject } };
      const patch = prependPatch(out.headers) ?? prependPatch(out.compact);
      if (!patch || at < 0) {
        logger.warn({ event: 'smtpd.checks_too_long', qid }, 'Authentication-Results too long to record');
        return null;
      }
      return { patch: { at, bytes: patch } };
    },
  };
}
