// Next hop - where mail for a domain goes, like Postfix's transport map + relayhost + MX:
//   [smtp_out] routes["example.net"] (exact, or ".example.net" for its subdomains) -> host:port
//   [smtp_out] relay_host                                                        -> host:port (+ AUTH)
//   otherwise DNS: MX records by preference; none -> the domain's own A/AAAA (RFC 5321 5.1);
//   a null MX (RFC 7505, "0 .") -> permanent failure. Lookups go through the [dns] resolver;
//   when it names servers, MX host names are resolved there too (connect to the address,
//   keep the name for TLS and MTA-STS).

import { type Dns, systemDns } from '../mail/auth/dns.js';
import type { SmtpOutConfig } from './config.js';

export interface Host {
  host: string;
  port: number;
  /** The MX host name when `host` is its address. */
  name?: string;
}

export interface Nexthop {
  /** Destination key: jobs with the same key share connections and a concurrency limit. */
  key: string;
  auth?: { user: string; pass: string };
  /** The relay host with AUTH: TLS required and verified (relay-tls.ts). */
  relayTls?: boolean;
  /** Hosts in the order to try; resolved lazily for MX destinations. */
  hosts(): Promise<Host[]>;
  /** For MX destinations: the recipient domain (whose MTA-STS policy applies). */
  mx?: string;
}

/** DeliveryError - a failure with its enhanced status; `permanent` decides bounce vs. defer. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly status: string,
  ) {
    super(message);
  }
}

/** parseHostPort - "host:port", "[v6]:port" or a bare host (default port). */
export function parseHostPort(spec: string, defaultPort: number): Host {
  const s = spec.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : defaultPort };
  const m = /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) throw new Error(`bad host:port ${JSON.stringify(spec)}`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : defaultPort };
}

/** nexthopFor - the destination of mail to DOMAIN under the current configuration. */
export function nexthopFor(cfg: SmtpOutConfig, domain: string, dns: Dns = systemDns()): Nexthop {
  const d = domain.toLowerCase();
  const route = routeFor(cfg.routes, d);
  if (route) {
    const host = parseHostPort(route, 25);
    return { key: `route:${route}`, hosts: async () => [host] };
  }
  if (cfg.relay_host) {
    const host = parseHostPort(cfg.relay_host, 25);
    const auth = cfg.relay_user ? { user: cfg.relay_user, pass: cfg.relay_password } : undefined;
    return { key: `relay:${cfg.relay_host}`, auth, relayTls: !!auth, hosts: async () => [host] };
  }
  return { key: `mx:${d}`, mx: d, hosts: () => mxHosts(d, cfg.port, dns) };
}

function routeFor(routes: Record<string, string>, domain: string): string | undefined {
  const lower = Object.fromEntries(Object.entries(routes).map(([k, v]) => [k.toLowerCase(), v]));
  if (lower[domain]) return lower[domain];
  const labels = domain.split('.');
  for (let i = 1; i < labels.length; i++) {
    const parent = '.' + labels.slice(i).join('.');
    if (lower[parent]) return lower[parent];
  }
  return lower['*'];
}

/** mxHosts - MX hosts by preference (ties kept in DNS order), falling back to the domain itself. */
export async function mxHosts(domain: string, port: number, dns: Dns = systemDns()): Promise<Host[]> {
  const names = await mxNames(domain, port, dns);
  if (!dns.custom) return names;
  const out: Host[] = [];
  for (const h of names) {
    try {
      for (const a of await dns.addresses(h.host)) out.push({ host: a, port, name: h.host });
    } catch {
      /* this MX has no address now; the others may */
    }
  }
  if (out.length === 0) throw new DeliveryError(`no address for the MX hosts of ${domain}`, false, '4.4.3');
  return out;
}

async function mxNames(domain: string, port: number, dns: Dns): Promise<Host[]> {
  let records: Array<{ exchange: string; priority: number }>;
  try {
    records = await dns.resolve(domain, 'MX');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENODATA') return [{ host: domain, port }];
    if (code === 'ENOTFOUND') throw new DeliveryError(`Host or domain name not found: ${domain}`, true, '5.1.2');
    throw new DeliveryError(`DNS lookup of MX for ${domain} failed: ${code ?? String(err)}`, false, '4.4.3');
  }
  if (records.length === 0) return [{ host: domain, port }];
  if (records.some((r) => r.exchange === '' || r.exchange === '.')) {
    throw new DeliveryError(`${domain} does not accept mail (null MX)`, true, '5.1.10');
  }
  return [...records].sort((a, b) => a.priority - b.priority).map((r) => ({ host: r.exchange, port }));
}
