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
  const key = JSON.stringify([cfg.servers, cfg.timeout_ms, cfg.tries, cfg.cache_s]);
  let d = cache.get(key);
  if (!d) {
    d = makeDns(cfg);
    cache.set(key, d);
  }
  return d;
}

/** systemDns - the system's resolver (no [dns] servers), for callers without a configuration. */
export function systemDns(): Dns {
  return dnsFor({ servers: [], timeout_ms: 5000, tries: 2, cache_s: 60 });
}

function makeDns(cfg: DnsConfig): Dns {
  const resolver = new Resolver({ timeout: cfg.timeout_ms, tries: cfg.tries });
  if (cfg.servers.length > 0) resolver.setServers(cfg.servers);
  const resolve = cached(cfg.cache_s, (name, rrtype) => resolver.resolve(name, rrtype));
  const empty = (err: unknown): boolean => ['ENOTFOUND', 'ENODATA'].includes((err as NodeJS.ErrnoException).code ?? '');
  return {
    custom: cfg.servers.length > 0,
    resolve,
    async txt(name) {
      try {
        return ((await resolve(name, 'TXT')) as string[][]).map((parts) => parts.join(''));
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
          out.push(...((await resolve(host, type)) as string[]));
        } catch (err) {
          if (!empty(err)) firstError ??= err;
        }
      }
      if (out.length === 0 && firstError) throw firstError;
      return out;
    },
  };
}

const MAX_CACHED = 10_000;

// "answer cache": answers and "no such name/record" kept CACHE_S seconds, like a local caching
// resolver (Node's own asks the server every time); temporary errors are never kept. One
// in-flight query per name and type: concurrent lookups share it.
function cached(seconds: number, query: ResolveFn): ResolveFn {
  if (seconds <= 0) return query;
  const cache = new Map<string, { until: number; answer: Promise<unknown> }>();
  return (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.answer;
    const answer = query(name, rrtype);
    cache.delete(key);
    cache.set(key, { until: now + seconds * 1000, answer });
    if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
    answer.catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTFOUND' && err.code !== 'ENODATA') cache.delete(key);
    });
    return answer;
  };
}
