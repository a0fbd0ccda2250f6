// dns - the one resolver every FancyMail lookup goes through ([dns] servers): MX and A/AAAA for
// delivery, TXT for SPF/DKIM/DMARC/MTA-STS, PTR. `[dns] servers = []` keeps the system's
// resolver (resolv.conf for records, getaddrinfo for host names); a list sends every query to
// those servers, host names of MX hosts included.
//
// The `resolve(name, rrtype)` function has the shape mailauth's `resolver` option expects
// (that of node:dns/promises `resolve`), and rejects with the same codes: ENOTFOUND (no such
// name), ENODATA (no record of that type), ESERVFAIL, ETIMEOUT, EREFUSED, ...

import { Resolver } from 'node:dns/promises';
import net from 'node:net';

import type { DnsConfig } from './config.js';

export type ResolveFn = (name: string, rrtype: string) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Dns {
  /** True when [dns] servers is set: host names must be resolved here too, not by getaddrinfo. */
  readonly custom: boolean;
  resolve: ResolveFn;
  /** txt - the TXT records of NAME, each joined from its strings; [] when there is none. */
  txt(name: string): Promise<string[]>;
  /** addresses - A then AAAA of HOST ([] when neither exists; other errors thrown). */
  addresses(host: string): Promise<string[]>;
}

const cache = new Map<string, Dns>();

/** dnsFor - the resolver of a [dns] section (one per distinct setting, shared in the process). */
export function dnsFor(cfg: DnsConfig): Dns {
  const key = JSON.stringify([cfg.servers, cfg.timeout_ms, cfg.tries]);
  let d = cache.get(key);
  if (!d) {
    d = makeDns(cfg);
    cache.set(key, d);
  }
  return d;
}

/** systemDns - the system's resolver (no [dns] servers), for callers without a configuration. */
export function systemDns(): Dns {
  return dnsFor({ servers: [], timeout_ms: 5000, tries: 2 });
}

function makeDns(cfg: DnsConfig): Dns {
  const resolver = new Resolver({ timeout: cfg.timeout_ms, tries: cfg.tries });
  if (cfg.servers.length > 0) resolver.setServers(cfg.servers);
  const resolve: ResolveFn = (name, rrtype) => resolver.resolve(name, rrtype);
  const empty = (err: unknown): boolean => ['ENOTFOUND', 'ENODATA'].includes((err as NodeJS.ErrnoException).code ?? '');
  return {
    custom: cfg.servers.length > 0,
    resolve,
    async txt(name) {
      try {
        return ((await resolver.resolveTxt(name)) as string[][]).map((parts) => parts.join(''));
      } catch (err) {
        if (empty(err)) return [];
        throw err;
      }
    },
    async addresses(host) {
      if (net.isIP(host)) return [host];
      const out: string[] = [];
      let firstError: unknown = null;
      for (const type of ['A', 'AAAA'] as const) {
        try {
          out.push(...((await resolver.resolve(host, type)) as string[]));
        } catch (err) {
          if (!empty(err)) firstError ??= err;
        }
      }
      if (out.length === 0 && firstError) throw firstError;
      return out;
    },
  };
}
