// The test zones of the mail-auth tests, with the keys they publish.

import { generateKeyPairSync } from 'node:crypto';

import { dkimSign, sealMessage } from 'mailauth';

import { recordFor } from '../../src/mail/auth/dkim-keys.js';

export const dkimKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
export const arcKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

/** The sending side of the inbound matrix: SPF, DKIM, DMARC records of several test domains. */
export function inboundZone(): string {
  return [
    'helo.test A 127.0.0.1',
    'helo.test TXT v=spf1 ip4:127.0.0.1 -all',
    'spf-pass.test TXT v=spf1 ip4:127.0.0.1 -all',
    'spf-fail.test TXT v=spf1 ip4:192.0.2.1 -all',
    'spf-soft.test TXT v=spf1 ip4:192.0.2.1 ~all',
    'spf-none.test A 192.0.2.1',
    'spf-temp.test SERVFAIL',
    `s1._domainkey.dkim.test TXT ${recordFor(dkimKey).record}`,
    'dkim.test A 192.0.2.7',
    '_dmarc.dkim.test TXT v=DMARC1; p=reject',
    'align-spf.test TXT v=spf1 ip4:127.0.0.1 -all',
    '_dmarc.align-spf.test TXT v=DMARC1; p=reject',
    'pnone.test A 192.0.2.1',
    '_dmarc.pnone.test TXT v=DMARC1; p=none',
    'quar.test A 192.0.2.1',
    '_dmarc.quar.test TXT v=DMARC1; p=quarantine',
    'rej.test A 192.0.2.1',
    '_dmarc.rej.test TXT v=DMARC1; p=reject',
    'list.test A 192.0.2.1',
    '_dmarc.list.test TXT v=DMARC1; p=none',
    `arc._domainkey.fwd.test TXT ${recordFor(arcKey).record}`,
    'fwd.test TXT v=spf1 ip4:127.0.0.1 -all',
  ].join('\n');
}

/** mail - a small message From: FROM. */
export function mail(from: string, subject: string, body = 'Hello there.\r\n', extra = ''): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <alice@example.test>\r\nSubject: ${subject}\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@test>\r\n${extra}\r\n${body}`);
}

/** signed - MSG with a DKIM-Signature of DOMAIN/SELECTOR (relaxed/relaxed) on top. */
export async function signed(msg: Buffer, domain: string, selector: string, key = dkimKey): Promise<Buffer> {
  const r = await dkimSign(msg, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: domain, selector, privateKey: key, algorithm: 'rsa-sha256' }] } as never);
  return Buffer.concat([Buffer.from(r.signatures), msg]);
}

/** forwarded - MSG as a mailing list at fwd.test passes it on: a footer added, then ARC-sealed. */
export async function forwarded(msg: Buffer): Promise<Buffer> {
  const changed = Buffer.concat([msg, Buffer.from('-- \r\nlist footer\r\n')]);
  const seal = await sealMessage(changed, {
    signingDomain: 'fwd.test',
    selector: 'arc',
    privateKey: arcKey,
    authResults: 'fwd.test; dkim=pass header.d=list.test header.s=s1; spf=pass smtp.mailfrom=list.test; dmarc=pass header.from=list.test',
    cv: 'none',
    signTime: new Date('2026-11-25T12:00:00Z'),
  } as never);
  return Buffer.concat([seal, changed]);
}
