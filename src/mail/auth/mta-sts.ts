// mta-sts - RFC 8461 policies of recipient domains, for smtp-out and `fmail dns --check`.
//
// "policy cache": a domain's policy is kept (in memory, at most [mta_sts] max_cached) until its
// max_age; the `_mta-sts` TXT id is looked at again after RECHECK_MS, and only a new id fetches
// the policy file again. A TXT lookup or fetch that fails while a policy is cached keeps the
// cached one (RFC 8461 5.1: an attacker must not be able to strip a known policy).
// The policy file comes from https://mta-sts.DOMAIN/.well-known/mta-sts.txt, the host resolved
// with our resolver, the certificate verified against the system CAs plus [mta_sts] ca_file;
// no redirects, at most 64 KiB, within FETCH_TIMEOUT_MS. Parsing and MX matching are mailauth's.

import { readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';

import { type MtaStsPolicy, parsePolicy, resolvePolicy, validateMx } from 'mailauth/lib/mta-sts.js';

import type { MtaStsConfig } from './config.js';
import type { Dns } from './dns.js';

const RECHECK_MS = 10 * 60 * 1000;
const FETCH_TIMEOUT_MS = 15_000;
const MAX_POLICY_BYTES = 64 * 1024;

export interface StsPolicy {
  id: string;
  mode: 'enforce' | 'testing' | 'none';
  mx: string[];
  maxAge: number;
}

interface Cached {
  policy: StsPolicy;
  expires: number;
  checked: number;
}

/** caBundle - the CA certificates to trust: the system's plus [mta_sts] ca_file. */
export function caBundle(cfg: MtaStsConfig): string[] {
  if (!cfg.ca_file) return [...tls.rootCertificates];
  return [...tls.rootCertificates, readFileSync(cfg.ca_file, 'utf8')];
}

/** fetchPolicyText - GET the policy file of DOMAIN; throws with a plain reason. */
export async function fetchPolicyText(domain: string, dns: Dns, port: number, ca: string[]): Promise<string> {
  const host = `mta-sts.${domain}`;
  let address = host;
  if (dns.custom) {
    const addrs = await dns.addresses(host);
    if (addrs.length === 0) throw new Error(`${host} has no address`);
    address = addrs[0]!;
  }
  return new Promise<string>((resolve, reject) => {
    const req = https.request(
      { host: address, port, servername: host, path: '/.well-known/mta-sts.txt', method: 'GET', headers: { host }, ca, rejectUnauthorized: true, timeout: FETCH_TIMEOUT_MS, agent: false },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`https://${host}/.well-known/mta-sts.txt answered HTTP ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_POLICY_BYTES) {
            req.destroy(new Error('policy file larger than 64 KiB'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout fetching https://${host}/.well-known/mta-sts.txt`)));
    req.on('error', reject);
    req.end();
  });
}

/** toPolicy - a policy file parsed (mailauth's parser), with its TXT id. */
export function toPolicy(id: string, text: string): StsPolicy {
  const p: MtaStsPolicy = parsePolicy(text);
  return { id, mode: p.mode, mx: p.mx ?? [], maxAge: p.maxAge ?? 0 };
}

/** mxMatches - does MX (a host name) match one of the policy's mx patterns? */
export function mxMatches(mx: string, policy: StsPolicy): boolean {
  return validateMx(mx.replace(/\.$/, ''), { mode: policy.mode, mx: policy.mx }).valid;
}

export class MtaSts {
  private readonly cache = new Map<string, Cached>();
  private readonly ca: string[];

  constructor(
    private readonly cfg: MtaStsConfig,
    private readonly dns: Dns,
    private readonly onError: (domain: string, err: string) => void = () => {},
  ) {
    this.ca = caBundle(cfg);
  }

  /** trusted - the CA list for verified TLS to an MX of an `enforce` domain. */
  get trustedCas(): string[] {
    return this.ca;
  }

  /** policy - the domain's policy in force (null: none, or not usable). */
  async policy(domainIn: string): Promise<StsPolicy | null> {
    if (!this.cfg.enabled) return null;
    const domain = domainIn.toLowerCase();
    const now = Date.now();
    const hit = this.cache.get(domain);
    const valid = hit && hit.expires > now ? hit : undefined;
    if (valid && now - valid.checked < RECHECK_MS) return valid.policy.mode === 'none' ? null : valid.policy;
    let id: string | false;
    try {
      id = await resolvePolicy(domain, { resolver: this.dns.resolve });
    } catch (err) {
      this.onError(domain, `TXT _mta-sts.${domain}: ${String((err as Error).message || (err as NodeJS.ErrnoException).code)}`);
      return valid ? valid.policy : null;
    }
    if (!id) {
      if (valid) return valid.policy; // RFC 8461 5.1: a cached policy outlives a vanished record
      this.cache.delete(domain);
      return null;
    }
    if (valid && valid.policy.id === id) {
      valid.checked = now;
      return valid.policy.mode === 'none' ? null : valid.policy;
    }
    let policy: StsPolicy;
    try {
      policy = toPolicy(id, await fetchPolicyText(domain, this.dns, this.cfg.https_port, this.ca));
    } catch (err) {
      this.onError(domain, String((err as Error).message));
      return valid ? valid.policy : null;
    }
    this.cache.delete(domain);
    this.cache.set(domain, { policy, expires: now + policy.maxAge * 1000, checked: now });
    while (this.cache.size > this.cfg.max_cached) this.cache.delete(this.cache.keys().next().value!);
    return policy.mode === 'none' ? null : policy;
  }
}
