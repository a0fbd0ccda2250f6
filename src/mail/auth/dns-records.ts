// dns-records - what a domain must publish for FancyMail to send and receive its mail, and a
// check of each record against what DNS serves (`fmail dns DOMAIN [--check]`):
//   MX, the host's address, SPF, DKIM (every key of the domain), DMARC, MTA-STS (TXT, the
//   policy host and file) and TLS-RPT. Each check says, in plain words, what is wrong and
//   what to publish instead.

import { spf as spfCheck } from 'mailauth';

import type { MtaStsConfig } from './config.js';
import type { DkimKey } from './dkim-keys.js';
import { txtRecordLine } from './dkim-keys.js';
import type { Dns } from './dns.js';
import { caBundle, fetchPolicyText, mxMatches, toPolicy } from './mta-sts.js';

export interface RecordSpec {
  /** Short name: MX, HOST, SPF, DKIM s1, DMARC, MTA-STS, MTA-STS policy, TLS-RPT. */
  what: string;
  /** Zone-file line(s) to publish. */
  zone: string;
  /** Explanation printed as a comment. */
  note?: string;
}

export interface CheckLine {
  what: string;
  ok: boolean;
  /** Plain words: what was found, or what is wrong and what to do. */
  text: string;
}

export interface DomainSetup {
  domain: string;
  hostname: string;
  keys: DkimKey[];
}

const STS_ID = (): string => new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);

/** policyFile - the MTA-STS policy to serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt. */
export function policyFile(hostname: string): string {
  return `version: STSv1\nmode: enforce\nmx: ${hostname}\nmax_age: 604800\n`;
}

/** records - every record DOMAIN needs, in the order to publish them. */
export function records(s: DomainSetup): RecordSpec[] {
  const d = s.domain;
  const out: RecordSpec[] = [
    { what: 'MX', zone: `${d}. IN MX 10 ${s.hostname}.`, note: 'mail for the domain comes to this server' },
    { what: 'HOST', zone: `${s.hostname}. IN A <this server's IPv4 address>  (and AAAA for IPv6)`, note: 'the MX host name must resolve, and its PTR should point back to it' },
    { what: 'SPF', zone: `${d}. IN TXT "v=spf1 mx -all"`, note: 'only the domain\'s MX hosts send its mail' },
  ];
  if (s.keys.length === 0) out.push({ what: 'DKIM', zone: `; no DKIM key yet: fmail dkim keygen ${d}`, note: 'then run fmail dns again' });
  for (const k of s.keys) out.push({ what: `DKIM ${k.selector}`, zone: txtRecordLine(k), note: `${k.type} key, ${k.state}` });
  out.push(
    { what: 'DMARC', zone: `_dmarc.${d}. IN TXT "v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@${d}"`, note: 'receivers junk mail From: the domain that fails SPF and DKIM alignment' },
    { what: 'MTA-STS', zone: `_mta-sts.${d}. IN TXT "v=STSv1; id=${STS_ID()}"\nmta-sts.${d}. IN CNAME <a web server with a certificate for mta-sts.${d}>`, note: 'change id whenever the policy file changes' },
    { what: 'MTA-STS policy', zone: `; https://mta-sts.${d}/.well-known/mta-sts.txt:\n${policyFile(s.hostname).trimEnd().split('\n').map((l) => `;   ${l}`).join('\n')}`, note: 'senders then require verified TLS to this MX' },
    { what: 'TLS-RPT', zone: `_smtp._tls.${d}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@${d}"`, note: 'where senders report TLS failures' },
  );
  return out;
}

const tag = (rec: string, name: string): string | undefined => {
  const m = new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*([^;]*)`, 'i').exec(rec);
  return m ? m[1]!.trim() : undefined;
};

async function lookup<T>(f: () => Promise<T>): Promise<{ value?: T; error?: string }> {
  try {
    return { value: await f() };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return { value: [] as unknown as T };
    return { error: code ?? String((err as Error).message) };
  }
}

/** check - compare each record with what DNS serves. */
export async function checkRecords(s: DomainSetup, dns: Dns, sts: MtaStsConfig): Promise<CheckLine[]> {
  const d = s.domain;
  const host = s.hostname.toLowerCase();
  const lines: CheckLine[] = [];
  const add = (what: string, ok: boolean, text: string): void => {
    lines.push({ what, ok, text });
  };

  // MX
  const mx = await lookup(() => dns.resolve(d, 'MX') as Promise<Array<{ exchange: string; priority: number }>>);
  if (mx.error) add('MX', false, `cannot look up the MX of ${d} (${mx.error})`);
  else if (mx.value!.length === 0) add('MX', false, `${d} has no MX record; publish: ${d}. IN MX 10 ${host}.`);
  else if (mx.value!.some((r) => r.exchange.toLowerCase().replace(/\.$/, '') === host)) add('MX', true, `${d} has MX ${mx.value!.map((r) => `${r.priority} ${r.exchange}`).join(', ')}`);
  else add('MX', false, `the MX of ${d} is ${mx.value!.map((r) => `${r.priority} ${r.exchange}`).join(', ')}, not this server (${host}): mail for ${d} does not come here; publish: ${d}. IN MX 10 ${host}.`);

  // HOST
  const addrs = await lookup(() => dns.addresses(host));
  const ips = addrs.value ?? [];
  if (addrs.error) add('HOST', false, `cannot look up the address of ${host} (${addrs.error})`);
  else if (ips.length === 0) add('HOST', false, `${host} has no A or AAAA record: nobody can connect to it`);
  else add('HOST', true, `${host} has address ${ips.join(', ')}`);

  // SPF
  const txt = await lookup(() => dns.txt(d));
  const spfs = (txt.value ?? []).filter((t) => /^v=spf1(\s|$)/i.test(t));
  if (txt.error) add('SPF', false, `cannot look up the TXT records of ${d} (${txt.error})`);
  else if (spfs.length === 0) add('SPF', false, `${d} has no SPF record: receivers cannot tell our mail from forgeries; publish: ${d}. IN TXT "v=spf1 mx -all"`);
  else if (spfs.length > 1) add('SPF', false, `${d} has ${spfs.length} SPF records; there must be exactly one (RFC 7208 4.5): merge them`);
  else if (ips.length === 0) add('SPF', false, `${d} has "${spfs[0]}", but ${host} has no address to test it with`);
  else {
    const bad: string[] = [];
    for (const ip of ips) {
      const r = (await spfCheck({ sender: `postmaster@${d}`, ip, helo: host, mta: host, resolver: dns.resolve as never })) as { status: { result: string } };
      if (r.status.result !== 'pass') bad.push(`${ip}: ${r.status.result}`);
    }
    if (bad.length) add('SPF', false, `"${spfs[0]}" does not allow this server to send for ${d} (${bad.join('; ')}); add "mx" or "a:${host}", e.g. ${d}. IN TXT "v=spf1 mx -all"`);
    else add('SPF', true, `"${spfs[0]}" allows ${ips.join(', ')}`);
  }

  // DKIM
  if (s.keys.length === 0) add('DKIM', false, `${d} has no DKIM key, so its mail goes unsigned; create one: fmail dkim keygen ${d}`);
  for (const k of s.keys) {
    const name = `${k.selector}._domainkey.${d}`;
    const r = await lookup(() => dns.txt(name));
    const found = (r.value ?? []).find((t) => /(^|;)\s*p\s*=/.test(t));
    const ours = tag(k.record, 'p');
    if (r.error) add(`DKIM ${k.selector}`, false, `cannot look up ${name} (${r.error})`);
    else if (!found) add(`DKIM ${k.selector}`, false, `${name} has no DKIM record${k.state === 'signing' ? ': receivers cannot verify our signatures' : ' (publish it before activating this key)'}; publish: ${txtRecordLine(k)}`);
    else if ((tag(found, 'p') ?? '').replace(/\s+/g, '') !== ours) add(`DKIM ${k.selector}`, false, `${name} publishes a different key than our ${k.selector} key file: signatures will fail; publish: ${txtRecordLine(k)}`);
    else if ((tag(found, 'k') ?? 'rsa').toLowerCase() !== k.type) add(`DKIM ${k.selector}`, false, `${name} says k=${tag(found, 'k') ?? 'rsa'} but the key is ${k.type}; publish: ${txtRecordLine(k)}`);
    else add(`DKIM ${k.selector}`, true, `${name} publishes our ${k.type} key (${k.state})`);
  }

  // DMARC
  const dm = await lookup(() => dns.txt(`_dmarc.${d}`));
  const dmarcs = (dm.value ?? []).filter((t) => /^v=DMARC1\s*(;|$)/i.test(t));
  const wantDmarc = `_dmarc.${d}. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@${d}"`;
  if (dm.error) add('DMARC', false, `cannot look up _dmarc.${d} (${dm.error})`);
  else if (dmarcs.length === 0) add('DMARC', false, `${d} has no DMARC record: receivers apply no policy to mail forged From: ${d}; publish: ${wantDmarc}`);
  else if (dmarcs.length > 1) add('DMARC', false, `_dmarc.${d} has ${dmarcs.length} DMARC records; receivers ignore them all: keep one`);
  else {
    const p = (tag(dmarcs[0]!, 'p') ?? '').toLowerCase();
    if (!['none', 'quarantine', 'reject'].includes(p)) add('DMARC', false, `"${dmarcs[0]}" has no valid p= (none, quarantine or reject); publish: ${wantDmarc}`);
    else add('DMARC', true, `"${dmarcs[0]}"${p === 'none' ? ' (p=none only monitors: move to quarantine when reports look right)' : ''}`);
  }

  // MTA-STS
  const st = await lookup(() => dns.txt(`_mta-sts.${d}`));
  const stsTxt = (st.value ?? []).filter((t) => /^v=STSv1\s*(;|$)/i.test(t));
  if (st.error) add('MTA-STS', false, `cannot look up _mta-sts.${d} (${st.error})`);
  else if (stsTxt.length !== 1) add('MTA-STS', false, stsTxt.length === 0 ? `${d} has no MTA-STS record, so senders may deliver to it without TLS; publish: _mta-sts.${d}. IN TXT "v=STSv1; id=${STS_ID()}" and the policy file` : `_mta-sts.${d} has ${stsTxt.length} STSv1 records; keep one`);
  else if (!tag(stsTxt[0]!, 'id')) add('MTA-STS', false, `"${stsTxt[0]}" has no id=; publish: _mta-sts.${d}. IN TXT "v=STSv1; id=${STS_ID()}"`);
  else {
    add('MTA-STS', true, `"${stsTxt[0]}"`);
    let text: string | null = null;
    try {
      text = await fetchPolicyText(d, dns, sts.https_port, caBundle(sts));
    } catch (err) {
      add('MTA-STS policy', false, `cannot fetch https://mta-sts.${d}/.well-known/mta-sts.txt (${(err as Error).message}); serve:\n${policyFile(host)}`);
    }
    if (text !== null) {
      try {
        const policy = toPolicy(tag(stsTxt[0]!, 'id')!, text);
        if (policy.mode !== 'none' && !mxMatches(host, policy)) add('MTA-STS policy', false, `the policy lists mx ${policy.mx.join(', ')} but not ${host}: senders enforcing it will not deliver here; serve:\n${policyFile(host)}`);
        else add('MTA-STS policy', true, `mode ${policy.mode}, mx ${policy.mx.join(', ')}, max_age ${policy.maxAge}${policy.mode === 'testing' ? ' (testing: switch to enforce when reports are clean)' : ''}`);
      } catch (err) {
        add('MTA-STS policy', false, `the policy file is not valid (${(err as Error).message}); serve:\n${policyFile(host)}`);
      }
    }
  }

  // TLS-RPT
  const tr = await lookup(() => dns.txt(`_smtp._tls.${d}`));
  const rpt = (tr.value ?? []).filter((t) => /^v=TLSRPTv1\s*(;|$)/i.test(t));
  const wantRpt = `_smtp._tls.${d}. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@${d}"`;
  if (tr.error) add('TLS-RPT', false, `cannot look up _smtp._tls.${d} (${tr.error})`);
  else if (rpt.length !== 1) add('TLS-RPT', false, rpt.length === 0 ? `${d} has no TLS-RPT record: nobody tells you when TLS to your MX fails; publish: ${wantRpt}` : `_smtp._tls.${d} has ${rpt.length} TLSRPTv1 records; keep one`);
  else if (!/^(mailto:|https:)/i.test(tag(rpt[0]!, 'rua') ?? '')) add('TLS-RPT', false, `"${rpt[0]}" has no rua= (mailto: or https:) to send reports to; publish: ${wantRpt}`);
  else add('TLS-RPT', true, `"${rpt[0]}"`);

  return lines;
}
