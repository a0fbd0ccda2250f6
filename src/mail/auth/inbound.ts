// inbound - the checks smtpd runs on mail arriving on the MX port, while DATA streams in:
// SPF on MAIL FROM and on HELO (RFC 7208), DKIM (RFC 6376, RFC 8463), ARC (RFC 8617) and
// DMARC (RFC 7489: alignment, p=, sp=, pct=), all through mailauth with our resolver. The
// outcome: the Authentication-Results header (RFC 8601) with our authserv-id, an optional
// quarantine header, and the verdict (accept, or 550 for DMARC p=reject / SPF fail when the
// policy says so).
//
// Policy ("DMARC decides", as rspamd's and OpenDMARC's defaults):
//   DMARC fail, p=reject, [mail_auth] dmarc_enforce -> 550 5.7.1
//   DMARC fail, p=quarantine (or p=reject not enforced) -> delivered with quarantine_header
//   pct=N < 100: a message outside the sample gets the next milder policy (RFC 7489 6.6.4)
//   SPF fail on MAIL FROM -> 550 5.7.23 only with [mail_auth] spf_reject
//   A temporary DNS failure never rejects: it shows as temperror.

import { PassThrough } from 'node:stream';

import { authenticate, spf as spfCheck } from 'mailauth';
import { formatAuthHeaderRow } from 'mailauth/lib/tools.js';

import { normalizeIp } from '../../shared/client-ip.js';
import type { MailAuthConfig } from './config.js';
import type { Dns } from './dns.js';

export interface CheckInput {
  ip: string;
  helo: string;
  /** Envelope sender ('' = null sender). */
  mailFrom: string;
}

export interface CheckFields {
  spf: string;
  spf_helo: string;
  dkim: string;
  dmarc: string;
  dmarc_policy?: string;
  dmarc_domain?: string;
  arc: string;
  action: 'accept' | 'quarantine' | 'reject';
}

export interface CheckOutcome {
  /** Header lines to put on top of the message, each ending in CRLF. */
  headers: string;
  /** The same without comments, for when the full form is too long to record. */
  compact: string;
  /** The SMTP reply text (after 550) when the message must be refused. */
  reject: string | null;
  fields: CheckFields;
}

export interface InboundCheck {
  /** Feed the message bytes as they arrive. */
  write(chunk: Buffer): void;
  end(): void;
  /** Stop: the message was refused for another reason. */
  abort(): void;
  result: Promise<CheckOutcome>;
}

type Status = { result?: string; comment?: unknown };

/** startCheck - begin checking one message; feed it, then await `result`. */
export function startCheck(cfg: MailAuthConfig, authservId: string, dns: Dns, input: CheckInput, random: () => number = Math.random): InboundCheck {
  const stream = new PassThrough();
  const ip = normalizeIp(input.ip);
  const helo = input.helo;
  const result = (async (): Promise<CheckOutcome> => {
    const heloSpf = spfHelo(helo, ip, authservId, dns);
    const res = await authenticate(stream, {
      ip,
      helo,
      sender: input.mailFrom || undefined,
      mta: authservId,
      resolver: dns.resolve as never,
      disableBimi: true,
    });
    const spfRow = await heloSpf;
    return decide(cfg, authservId, res, spfRow, random);
  })();
  result.catch(() => {}); // awaited by the caller; never an unhandled rejection after abort
  return {
    write: (c) => {
      stream.write(c);
    },
    end: () => stream.end(),
    abort: () => stream.destroy(new Error('aborted')),
    result,
  };
}

interface HeloRow {
  result: string;
  info: string;
}

// RFC 7208 2.3: the HELO identity is checked as postmaster@HELO; an address literal has none.
async function spfHelo(helo: string, ip: string, mta: string, dns: Dns): Promise<HeloRow | null> {
  if (!helo || helo.startsWith('[') || !/^[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$/.test(helo)) return null;
  const r = (await spfCheck({ sender: `postmaster@${helo}`, ip, helo, mta, resolver: dns.resolve as never })) as { status: Status & { smtp?: unknown } };
  const status = { ...r.status, smtp: { helo } };
  return { result: String(r.status.result ?? 'none'), info: formatAuthHeaderRow('spf', status) };
}

type AuthResult = Awaited<ReturnType<typeof authenticate>>;

function decide(cfg: MailAuthConfig, authservId: string, res: AuthResult, helo: HeloRow | null, random: () => number): CheckOutcome {
  const rows: string[] = [];
  const dkimResults = ((res.dkim?.results ?? []) as Array<{ info: string; status: Status; signingDomain?: string }>).map(bodyHashFails);
  for (const d of dkimResults) rows.push(d.info);
  if (dkimResults.length === 0) rows.push('dkim=none');
  const spf = res.spf as { info: string; status: Status } | false;
  if (spf) rows.push(spf.info);
  if (helo) rows.push(helo.info);
  const arc = res.arc as { info?: string; status?: Status } | false;
  if (arc && arc.info) rows.push(arc.info);
  const dmarc = res.dmarc as { info?: string; status: Status; policy?: string; pct?: number; domain?: string } | false;
  if (dmarc && dmarc.info) rows.push(dmarc.info);

  const fields: CheckFields = {
    spf: spf ? String(spf.status.result) : 'none',
    spf_helo: helo ? helo.result : 'none',
    dkim: dkimResults.length ? dkimResults.map((d) => `${d.status.result}${d.signingDomain ? ':' + d.signingDomain : ''}`).join(',') : 'none',
    dmarc: dmarc ? String(dmarc.status.result) : 'none',
    arc: arc && arc.status ? String(arc.status.result) : 'none',
    action: 'accept',
  };
  const ar = (list: string[]): string => `Authentication-Results: ${authservId};\r\n ` + list.map(fold).join(';\r\n ') + '\r\n';
  let headers = ar(rows);
  let extra = '';
  let reject: string | null = null;

  if (dmarc && dmarc.status.result === 'fail') {
    fields.dmarc_domain = dmarc.domain;
    let policy = (dmarc.policy ?? 'none').toLowerCase();
    const pct = typeof dmarc.pct === 'number' ? dmarc.pct : 100;
    if (pct < 100 && random() * 100 >= pct) policy = policy === 'reject' ? 'quarantine' : 'none';
    fields.dmarc_policy = policy;
    if (policy === 'reject' && cfg.dmarc_enforce) {
      reject = `5.7.1 Email rejected per DMARC policy for ${dmarc.domain ?? 'the From domain'}`;
      fields.action = 'reject';
    } else if (policy === 'reject' || policy === 'quarantine') {
      extra = `${cfg.quarantine_header}: dmarc=fail policy=${dmarc.policy ?? policy} header.from=${dmarc.domain ?? ''}\r\n`;
      fields.action = 'quarantine';
    }
  }
  if (!reject && cfg.spf_reject && fields.spf === 'fail') {
    reject = '5.7.23 Message rejected due to SPF failure';
    fields.action = 'reject';
  }
  headers += extra;
  const compact = ar(rows.map((r) => r.replace(/ \((?:[^()\\]|\\.)*\)/g, ''))) + extra;
  return { headers, compact, reject, fields };
}

// A body hash mismatch is a failed verification (RFC 6376 6.1.3, RFC 8601 2.7.1 "fail");
// mailauth reports it as neutral.
function bodyHashFails<T extends { info: string; status: Status }>(d: T): T {
  if (d.status.result !== 'neutral' || !/body hash did not verify/.test(String(d.status.comment ?? ''))) return d;
  return { ...d, info: d.info.replace(/^dkim=neutral/, 'dkim=fail'), status: { ...d.status, result: 'fail' } };
}

// mailauth folds at 160; keep each result on lines of at most ~78 characters where it can.
function fold(row: string): string {
  if (row.length <= 76) return row;
  const words = row.split(' ');
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > 76) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.join('\r\n\t');
}
