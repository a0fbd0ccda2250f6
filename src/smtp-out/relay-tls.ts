// relay TLS - the relay host with AUTH gets Postfix's `encrypt` level: TLS is required before
// the credentials are sent, and the certificate is verified against the system CAs or
// [smtp_out] relay_ca_file (relay_tls_verify = false accepts any certificate, e.g. a
// self-signed one on a private network). Without TLS the message is deferred and the password
// never leaves this process.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';

import { dataPath } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Host } from './nexthop.js';
import type { SessionOptions } from './session.js';

const caCache = new Map<string, string[]>();

/** relayTls - the TLS options for a session to the relay host HOST. */
export function relayTls(config: Config, host: Host): NonNullable<SessionOptions['tls']> {
  const cfg = config.smtp_out;
  // An IP literal is checked against the certificate's IP names; SNI carries host names only.
  const servername = host.name ?? (isIP(host.host) ? '' : host.host);
  if (!cfg.relay_tls_verify) return { servername, ca: [], verify: false, required: true };
  return { servername, ca: cfg.relay_ca_file ? caFile(dataPath(config, cfg.relay_ca_file)) : [...rootCertificates], verify: true, required: true };
}

// Read once per path: a new CA file is picked up by changing the setting (SIGHUP), or a restart.
function caFile(file: string): string[] {
  let ca = caCache.get(file);
  if (!ca) {
    ca = [readFileSync(file, 'utf8')];
    caCache.set(file, ca);
  }
  return ca;
}
