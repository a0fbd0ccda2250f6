// A private Postfix instance for interop tests and benchmarks: its own config_directory, queue
// and Maildirs in a temp folder, listening on one loopback port, never touching /etc/postfix.
// Needs root (postfix start) and the Debian postfix package.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface PostfixOptions {
  /** Empty folder for everything Postfix writes. */
  dir: string;
  /** Loopback port for Postfix's smtpd. */
  port: number;
  /** Domains Postfix delivers itself into Maildirs, with their users (local parts). */
  mailboxes?: Record<string, string[]>;
  /** Transport map: domain -> "host:port" Postfix relays to (e.g. FancyMail's smtpd). */
  relay?: Record<string, string>;
  /** Extra main.cf lines (benchmarks: e.g. hold every message to time accepting alone). */
  mainCf?: string[];
}

export interface PostfixInstance {
  port: number;
  /** Files in a Postfix Maildir's new/ (user@domain). */
  maildirFiles(address: string): string[];
  maildir(address: string): string;
  /** The master process's pid (its children are the instance's other processes). */
  masterPid(): number;
  stop(): void;
}

function uidGid(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postfix']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postfix']).toString().trim());
  return { uid, gid };
}

export function postfixAvailable(): boolean {
  return spawnSync('sh', ['-c', 'command -v postfix && id postfix && [ "$(id -u)" = 0 ]'], { stdio: 'ignore' }).status === 0;
}

/** startPostfix - write a minimal main.cf/master.cf and start the instance. */
export function startPostfix(opts: PostfixOptions): PostfixInstance {
  const { dir, port } = opts;
  const { uid, gid } = uidGid();
  const etc = path.join(dir, 'etc');
  const vmail = path.join(dir, 'vmail');
  for (const d of [etc, path.join(dir, 'spool'), path.join(dir, 'data'), vmail]) mkdirSync(d, { recursive: true });
  // Postfix's daemons run as the postfix user: they must be able to walk into the (0700) temp dirs.
  for (let d = dir; d !== path.dirname(d) && d.startsWith('/tmp/'); d = path.dirname(d)) chmodSync(d, 0o755);
  chownSync(path.join(dir, 'data'), uid, gid);
  chownSync(vmail, uid, gid);

  const mailboxes = opts.mailboxes ?? {};
  const vmailbox = Object.entries(mailboxes)
    .flatMap(([domain, users]) => users.map((u) => `${u}@${domain} ${domain}/${u}/`))
    .join('\n');
  writeFileSync(path.join(dir, 'vmailbox'), vmailbox + '\n');
  const transport = Object.entries(opts.relay ?? {})
    .map(([domain, hostPort]) => {
      const [host, p] = hostPort.split(':');
      return `${domain} smtp:[${host}]:${p}`;
    })
    .join('\n');
  writeFileSync(path.join(dir, 'transport'), transport + '\n');

  const mainCf = [
    'compatibility_level = 3.6',
    `queue_directory = ${dir}/spool`,
    `data_directory = ${dir}/data`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    'myhostname = postfix.interop.test',
    'mydestination =',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    `virtual_mailbox_domains = ${Object.keys(mailboxes).join(' ') || 'nothing.invalid'}`,
    `virtual_mailbox_base = ${vmail}`,
    `virtual_mailbox_maps = texthash:${dir}/vmailbox`,
    `virtual_uid_maps = static:${uid}`,
    `virtual_gid_maps = static:${gid}`,
    `transport_maps = texthash:${dir}/transport`,
    `relay_domains = ${Object.keys(opts.relay ?? {}).join(' ')}`,
    'smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination',
    'smtp_tls_security_level = may',
    'smtp_dns_support_level = disabled',
    'disable_dns_lookups = yes',
    'smtputf8_enable = yes',
    `maillog_file = ${dir}/maillog`,
    'maillog_file_prefixes = /tmp, /var, /dev/stdout, /',
    // Retry fast so interop tests need not wait minutes after a transient failure.
    'minimal_backoff_time = 2s',
    'maximal_backoff_time = 4s',
    'queue_run_delay = 2s',
    ...(opts.mainCf ?? []),
  ].join('\n');
  writeFileSync(path.join(etc, 'main.cf'), mainCf + '\n');
  const masterCf = execFileSync('sh', ['-c', 'cat /etc/postfix/master.cf']).toString().replace(/^smtp\s+inet.*$/m, `127.0.0.1:${port} inet n - n - - smtpd`);
  writeFileSync(path.join(etc, 'master.cf'), masterCf);

  const res = spawnSync('postfix', ['-c', etc, 'start'], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`postfix start failed: ${res.stderr}${res.stdout}`);
  const maildir = (address: string): string => {
    const [local, domain] = address.split('@');
    return path.join(vmail, domain!, local!);
  };
  return {
    port,
    maildir,
    masterPid: () => Number(readFileSync(path.join(dir, 'spool/pid/master.pid'), 'utf8').trim()),
    maildirFiles: (address) => {
      try {
        return readdirSync(path.join(maildir(address), 'new')).map((f) => path.join(maildir(address), 'new', f));
      } catch {
        return [];
      }
    },
    stop: () => {
      spawnSync('postfix', ['-c', etc, 'stop'], { stdio: 'ignore' });
      spawnSync('postfix', ['-c', etc, 'abort'], { stdio: 'ignore' });
    },
  };
}
