// dkim-keys - the DKIM key store under [dkim] keys_dir: DOMAIN/SELECTOR.key is a signing key,
// DOMAIN/SELECTOR.standby a key whose record is (being) published but that does not sign yet.
// Files are PEM (PKCS#8), mode 0600, folders 0700. Rotation without a gap:
//   keygen (new key, standby while the domain has a signing key of that type) -> publish its
//   TXT -> activate (it signs, the old one goes standby) -> retire the old one after a few days.
// RSA-2048 and Ed25519 (RFC 8463) keys sign side by side when both are active.

import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export type KeyType = 'rsa' | 'ed25519';
export type KeyState = 'signing' | 'standby';

export interface DkimKey {
  domain: string;
  selector: string;
  type: KeyType;
  state: KeyState;
  file: string;
  privateKey: string;
  /** The TXT record to publish at SELECTOR._domainkey.DOMAIN. */
  record: string;
}

const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/i;

export class DkimKeyError extends Error {}

/** checkName - refuse domain and selector names that could escape the folder or break DNS. */
function checkName(domain: string, selector?: string): void {
  if (!DOMAIN.test(domain)) throw new DkimKeyError(`not a domain name: ${JSON.stringify(domain)}`);
  if (selector !== undefined && !SELECTOR.test(selector)) throw new DkimKeyError(`not a selector (letters, digits, -): ${JSON.stringify(selector)}`);
}

/** recordFor - the DKIM TXT record of a private key. */
export function recordFor(privateKeyPem: string): { type: KeyType; record: string } {
  const pub = createPublicKey(createPrivateKey(privateKeyPem));
  const der = pub.export({ type: 'spki', format: 'der' });
  if (pub.asymmetricKeyType === 'ed25519') {
    // RFC 8463: p= is the raw 32-byte key, not the SPKI structure.
    return { type: 'ed25519', record: `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}` };
  }
  if (pub.asymmetricKeyType === 'rsa') return { type: 'rsa', record: `v=DKIM1; k=rsa; p=${der.toString('base64')}` };
  throw new DkimKeyError(`unsupported key type ${pub.asymmetricKeyType}`);
}

/** listKeys - every key of DOMAIN (or of all domains), sorted by domain and selector. */
export async function listKeys(dir: string, domain?: string): Promise<DkimKey[]> {
  const domains = domain ? [domain.toLowerCase()] : await fsp.readdir(dir).catch(() => [] as string[]);
  const out: DkimKey[] = [];
  for (const d of domains.sort()) {
    if (!DOMAIN.test(d)) continue;
    const names = await fsp.readdir(path.join(dir, d)).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const m = /^(.+)\.(key|standby)$/.exec(name);
      if (!m || !SELECTOR.test(m[1]!)) continue;
      const file = path.join(dir, d, name);
      const privateKey = await fsp.readFile(file, 'utf8');
      const { type, record } = recordFor(privateKey);
      out.push({ domain: d, selector: m[1]!, type, state: m[2] === 'key' ? 'signing' : 'standby', file, privateKey, record });
    }
  }
  return out;
}

/** keygen - a new key; standby when the domain already signs with a key of that type (unless activate). */
export async function keygen(dir: string, domainIn: string, selector: string, type: KeyType, activate = false): Promise<DkimKey> {
  const domain = domainIn.toLowerCase();
  checkName(domain, selector);
  const existing = await listKeys(dir, domain);
  if (existing.some((k) => k.selector === selector)) throw new DkimKeyError(`${domain} already has a key with selector ${selector}`);
  const pair = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const signs = activate || !existing.some((k) => k.type === type && k.state === 'signing');
  await fsp.mkdir(path.join(dir, domain), { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700).catch(() => {});
  const file = path.join(dir, domain, `${selector}.${signs ? 'key' : 'standby'}`);
  const tmp = `${file}.tmp`;
  await fsp.writeFile(tmp, pem, { mode: 0o600, flag: 'wx' });
  await fsp.rename(tmp, file);
  if (signs && activate) await demoteOthers(dir, domain, selector, type);
  return { domain, selector, type, state: signs ? 'signing' : 'standby', file, privateKey: pem, record: recordFor(pem).record };
}

/** activate - SELECTOR signs for DOMAIN; other signing keys of its type go standby. */
export async function activate(dir: string, domainIn: string, selector: string): Promise<DkimKey> {
  const domain = domainIn.toLowerCase();
  checkName(domain, selector);
  const key = (await listKeys(dir, domain)).find((k) => k.selector === selector);
  if (!key) throw new DkimKeyError(`${domain} has no key with selector ${selector}`);
  if (key.state === 'standby') await fsp.rename(key.file, path.join(dir, domain, `${selector}.key`));
  await demoteOthers(dir, domain, selector, key.type);
  return { ...key, state: 'signing', file: path.join(dir, domain, `${selector}.key`) };
}

/** retire - delete a standby key (a signing key must be replaced by activating another first). */
export async function retire(dir: string, domainIn: string, selector: string): Promise<DkimKey> {
  const domain = domainIn.toLowerCase();
  checkName(domain, selector);
  const key = (await listKeys(dir, domain)).find((k) => k.selector === selector);
  if (!key) throw new DkimKeyError(`${domain} has no key with selector ${selector}`);
  if (key.state === 'signing') throw new DkimKeyError(`${selector} still signs for ${domain}: activate another key first`);
  await fsp.rm(key.file);
  return key;
}

async function demoteOthers(dir: string, domain: string, selector: string, type: KeyType): Promise<void> {
  for (const k of await listKeys(dir, domain)) {
    if (k.selector !== selector && k.type === type && k.state === 'signing') await fsp.rename(k.file, path.join(dir, domain, `${k.selector}.standby`));
  }
}

/** txtRecordLine - the zone-file line for a key, its record split into 255-byte strings. */
export function txtRecordLine(k: Pick<DkimKey, 'domain' | 'selector' | 'record'>): string {
  const parts: string[] = [];
  for (let i = 0; i < k.record.length; i += 255) parts.push(`"${k.record.slice(i, i + 255)}"`);
  return `${k.selector}._domainkey.${k.domain}. IN TXT ( ${parts.join(' ')} )`;
}
