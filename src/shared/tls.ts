// TLS material for smtpd and pop3d: the configured PEM files, or a self-signed pair made in
// DATA/tls on first start so STARTTLS works out of the box.

import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

import { generate } from 'selfsigned';

import type { Config } from '../config/schema.js';
import { writeFileAtomic } from './durable.js';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  selfSigned: boolean;
}

/** ensureTls - load the certificate and key, making a self-signed pair if none is configured. */
export async function ensureTls(cfg: Config): Promise<TlsMaterial> {
  if (cfg.tls.cert && cfg.tls.key) {
    return { cert: await fsp.readFile(cfg.tls.cert), key: await fsp.readFile(cfg.tls.key), selfSigned: false };
  }
  const dir = path.join(cfg.data_dir, 'tls');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const pems = await generate([{ name: 'commonName', value: cfg.hostname }], {
      keySize: 2048,
      days: 3650,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: cfg.hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
    } as Parameters<typeof generate>[1]);
    await writeFileAtomic(keyFile, pems.private, 0o600);
    await writeFileAtomic(certFile, pems.cert, 0o644);
  }
  return { cert: await fsp.readFile(certFile), key: await fsp.readFile(keyFile), selfSigned: true };
}
