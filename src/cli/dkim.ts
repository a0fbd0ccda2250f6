// `fmail dkim keygen|list|activate|retire` - DKIM keys under [dkim] keys_dir (see
// src/mail/auth/dkim-keys.ts). smtp-out signs with the signing keys and notices changes
// within seconds; no restart needed.

import type { Command } from 'commander';

import { dataPath, loadConfig } from '../config/load.js';
import { type DkimKey, type KeyType, activate, keygen, listKeys, retire, txtRecordLine } from '../mail/auth/dkim-keys.js';

interface Opts {
  config?: string;
  selector?: string;
  type?: string;
  activate?: boolean;
}

function keysDir(opts: Opts): string {
  const cfg = loadConfig(opts.config);
  return dataPath(cfg, cfg.dkim.keys_dir);
}

/** defaultSelector - e.g. rsa20261202 / ed20261202: sorts by age, names the type. */
function defaultSelector(type: KeyType): string {
  return `${type === 'rsa' ? 'rsa' : 'ed'}${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`;
}

function show(k: DkimKey): string {
  return `${k.domain} ${k.selector} ${k.type} ${k.state}\n${txtRecordLine(k)}\n`;
}

export function register(program: Command): void {
  const dkim = program.command('dkim').description('DKIM signing keys: create, list, rotate');
  const cfgOpt = (c: Command): Command => c.option('-c, --config <file>', 'configuration file (TOML); defaults apply when absent');

  cfgOpt(dkim.command('keygen').description('create a key (mode 0600 under DATA) and print the TXT record to publish'))
    .argument('<domain>', 'the signing domain (d=), e.g. example.test')
    .option('-s, --selector <selector>', 'selector (s=); default: the type and today, e.g. rsa20261202')
    .option('-t, --type <type>', 'rsa (2048 bits) or ed25519', 'rsa')
    .option('--activate', 'sign with it at once even if the domain signs with another key of this type')
    .action(async (domain: string, opts: Opts) => {
      const type = opts.type === 'ed25519' ? 'ed25519' : opts.type === 'rsa' ? 'rsa' : null;
      if (!type) throw new Error(`--type must be rsa or ed25519, not ${opts.type}`);
      const k = await keygen(keysDir(opts), domain, opts.selector ?? defaultSelector(type), type, opts.activate);
      process.stdout.write(`Publish this TXT record in the DNS of ${k.domain}:\n\n${txtRecordLine(k)}\n\n`);
      process.stdout.write(
        k.state === 'signing'
          ? `The key signs mail from ${k.domain} now (${k.file}).\n`
          : `The key is on standby (${k.file}): once the record is published, switch with\n  fmail dkim activate ${k.domain} ${k.selector}\n`,
      );
    });

  cfgOpt(dkim.command('list').description('keys, their state and their TXT records'))
    .argument('[domain]', 'only this domain')
    .action(async (domain: string | undefined, opts: Opts) => {
      const keys = await listKeys(keysDir(opts), domain);
      if (keys.length === 0) process.stdout.write(`no DKIM keys${domain ? ` for ${domain}` : ''}; create one: fmail dkim keygen DOMAIN\n`);
      for (const k of keys) process.stdout.write(show(k));
    });

  cfgOpt(dkim.command('activate').description('sign with this key; the domain\'s other signing key of its type goes standby'))
    .argument('<domain>')
    .argument('<selector>')
    .action(async (domain: string, selector: string, opts: Opts) => {
      const k = await activate(keysDir(opts), domain, selector);
      process.stdout.write(`${k.domain}: ${k.selector} (${k.type}) signs now; keep the old record published for a few days, then: fmail dkim retire ${k.domain} OLD-SELECTOR\n`);
    });

  cfgOpt(dkim.command('retire').description('delete a standby key (its TXT record can then be removed)'))
    .argument('<domain>')
    .argument('<selector>')
    .action(async (domain: string, selector: string, opts: Opts) => {
      const k = await retire(keysDir(opts), domain, selector);
      process.stdout.write(`${k.domain}: ${k.selector} deleted; remove the record ${k.selector}._domainkey.${k.domain} from DNS\n`);
    });
}
