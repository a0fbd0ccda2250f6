// `fmail dns DOMAIN [--check]` - the DNS records DOMAIN needs (src/mail/auth/dns-records.ts),
// and with --check whether DNS serves them, asked through the [dns] resolver. Exit status 1
// when a check fails.

import type { Command } from 'commander';

import { dataPath, loadConfig } from '../config/load.js';
import { checkRecords, records } from '../mail/auth/dns-records.js';
import { listKeys } from '../mail/auth/dkim-keys.js';
import { dnsFor } from '../mail/auth/dns.js';

export function register(program: Command): void {
  program
    .command('dns')
    .description('the DNS records a domain needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT); --check compares them with DNS')
    .argument('<domain>', 'a local domain, e.g. example.test')
    .option('--check', 'look each record up and say what is missing or wrong')
    .option('-c, --config <file>', 'configuration file (TOML); defaults apply when absent')
    .action(async (domainIn: string, opts: { check?: boolean; config?: string }) => {
      const cfg = loadConfig(opts.config);
      const domain = domainIn.toLowerCase().replace(/\.$/, '');
      const setup = { domain, hostname: cfg.hostname.toLowerCase(), keys: await listKeys(dataPath(cfg, cfg.dkim.keys_dir), domain) };
      if (!opts.check) {
        for (const r of records(setup)) process.stdout.write(`; ${r.what}${r.note ? `: ${r.note}` : ''}\n${r.zone}\n\n`);
        return;
      }
      const lines = await checkRecords(setup, dnsFor(cfg.dns), cfg.mta_sts);
      const width = Math.max(...lines.map((l) => l.what.length));
      for (const l of lines) process.stdout.write(`${l.ok ? 'ok  ' : 'FAIL'}  ${l.what.padEnd(width)}  ${l.text.replace(/\n/g, '\n' + ' '.repeat(width + 8))}\n`);
      const bad = lines.filter((l) => !l.ok).length;
      process.stdout.write(bad ? `\n${bad} of ${lines.length} checks failed.\n` : `\nall ${lines.length} checks passed.\n`);
      if (bad) process.exitCode = 1;
    });
}
