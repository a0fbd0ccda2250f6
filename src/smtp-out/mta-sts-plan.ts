// mta-sts-plan - how the recipient domain's MTA-STS policy (RFC 8461) shapes a connection:
//   enforce  only MX hosts the policy lists, TLS required with a verified certificate for the
//            MX name; none listed or TLS not verified -> temporary failure (defer)
//   testing  deliver as usual; a host not listed or TLS that would not verify is logged
//            (smtp-out.mta_sts, result=fail)
// Counted in fmail_mta_sts_total{mode,result}.

import type { MtaSts } from '../mail/auth/mta-sts.js';
import { mxMatches } from '../mail/auth/mta-sts.js';
import { mtaStsResults } from '../mail/auth/metrics.js';
import type { Logger } from '../shared/log.js';
import { DeliveryError, type Host } from './nexthop.js';
import type { Session, SessionOptions } from './session.js';

export interface StsPlan {
  mode: 'enforce' | 'testing';
  hosts: Host[];
  tls(host: Host): SessionOptions['tls'];
  /** After a session is open: check (testing) what enforce would have required. */
  connected(session: Session, host: Host): void;
}

/** stsPlan - null when the domain has no policy in force. */
export async function stsPlan(sts: MtaSts, domain: string, hosts: Host[], logger: Logger): Promise<StsPlan | null> {
  const policy = await sts.policy(domain);
  if (!policy || (policy.mode !== 'enforce' && policy.mode !== 'testing')) return null;
  const mode = policy.mode;
  const name = (h: Host): string => h.name ?? h.host;
  const listed = hosts.filter((h) => mxMatches(name(h), policy));
  const unlisted = hosts.filter((h) => !listed.includes(h)).map(name);
  if (unlisted.length > 0) logger.info({ event: 'smtp-out.mta_sts', domain, mode, result: 'fail', reason: 'mx not in policy', hosts: [...new Set(unlisted)].join(',') }, 'MX not listed in the MTA-STS policy');
  if (mode === 'enforce' && listed.length === 0) {
    mtaStsResults.inc({ mode, result: 'fail' });
    throw new DeliveryError(`MTA-STS policy of ${domain} (enforce) lists none of its MX hosts`, false, '4.7.5');
  }
  const ca = sts.trustedCas;
  return {
    mode,
    hosts: mode === 'enforce' ? listed : hosts,
    tls: (h) => ({ servername: name(h), ca, verify: mode === 'enforce' }),
    connected(session, h) {
      const v = session.tlsVerified;
      mtaStsResults.inc({ mode, result: v.ok ? 'pass' : 'fail' });
      if (v.ok) return;
      logger.info({ event: 'smtp-out.mta_sts', domain, mode, result: 'fail', host: name(h), reason: v.error }, 'TLS would not satisfy the MTA-STS policy (testing: delivered anyway)');
    },
  };
}
