// dkim-sign - DKIM signatures (RFC 6376 relaxed/relaxed; rsa-sha256 and ed25519-sha256) for a
// message leaving through smtp-out: signed with every signing key of the From: domain, or of
// its nearest parent that has one (d= a parent still aligns for DMARC's relaxed mode).
// Keys are read from [dkim] keys_dir and re-read at most every few seconds, so `fmail dkim
// activate` takes effect without a restart.

import type { Readable } from 'node:stream';

import { dkimSign } from 'mailauth';

import { type DkimKey, listKeys } from './dkim-keys.js';

const RELOAD_MS = 5000;

export class DkimSigner {
  private keys = new Map<string, { at: number; keys: Promise<DkimKey[]> }>();

  constructor(private readonly dir: string) {}

  /** keysFor - the signing keys for mail From: DOMAIN ([] when none). */
  async keysFor(fromDomain: string): Promise<DkimKey[]> {
    const labels = fromDomain.toLowerCase().split('.');
    for (let i = 0; i < labels.length - 1; i++) {
      const d = labels.slice(i).join('.');
      const keys = (await this.domainKeys(d)).filter((k) => k.state === 'signing');
      if (keys.length > 0) return keys;
    }
    return [];
  }

  /** sign - the DKIM-Signature header lines (CRLF-ended) for MESSAGE, '' when no key applies. */
  async sign(message: Readable | Buffer, fromDomain: string): Promise<{ headers: string; keys: DkimKey[] }> {
    const keys = fromDomain ? await this.keysFor(fromDomain) : [];
    if (keys.length === 0) {
      if (!Buffer.isBuffer(message)) message.destroy();
      return { headers: '', keys };
    }
    const res = await dkimSign(message, {
      signingDomain: keys[0]!.domain,
      selector: keys[0]!.selector,
      privateKey: keys[0]!.privateKey,
      canonicalization: 'relaxed/relaxed',
      signatureData: keys.map((k) => ({
        signingDomain: k.domain,
        selector: k.selector,
        privateKey: k.privateKey,
        algorithm: k.type === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256',
        canonicalization: 'relaxed/relaxed',
      })),
    });
    if (res.errors?.length) throw new Error(`DKIM signing failed: ${res.errors.map((e: unknown) => String((e as Error).message ?? e)).join('; ')}`);
    return { headers: res.signatures, keys };
  }

  private domainKeys(domain: string): Promise<DkimKey[]> {
    const now = Date.now();
    const hit = this.keys.get(domain);
    if (hit && now - hit.at < RELOAD_MS) return hit.keys;
    const keys = listKeys(this.dir, domain).catch(() => [] as DkimKey[]);
    this.keys.set(domain, { at: now, keys });
    if (this.keys.size > 10_000) this.keys.delete(this.keys.keys().next().value!);
    return keys;
  }
}

/** fromDomain - the domain of the first address in the From: field of a header block. */
export function fromDomain(header: Buffer | string): string {
  const text = (typeof header === 'string' ? header : header.toString('latin1')).replace(/\r?\n(?=[ \t])/g, '');
  const m = /^from[ \t]*:(.*)$/im.exec(text);
  if (!m) return '';
  const addr = /([^\s<>@,;:"()]+)@([A-Za-z0-9.-]+\.[A-Za-z0-9-]+)/.exec(m[1]!);
  return addr ? addr[2]!.toLowerCase() : '';
}
