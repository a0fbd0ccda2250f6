// A private Dovecot 2.3 IMAP server for tests: config, passwd-file, Maildirs and sockets all in
// one temp folder, its own loopback port, no system service. Mail is delivered with its LDA.
// As root (the CI case) the mail processes run as nobody, as Dovecot refuses root for mail.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { freePort, tempDir } from './tmp.js';
import { toolSkip } from './tools.js';

const LIBEXEC = '/usr/lib/dovecot';
const NOBODY = 65534;

/** dovecotSkip - why a Dovecot IMAP test cannot run here, or false (under CI a missing part is an error). */
export function dovecotSkip(): string | false {
  const tools = toolSkip('dovecot');
  if (tools) return tools;
  for (const bin of ['imap', 'imap-login', 'dovecot-lda']) {
    if (!existsSync(path.join(LIBEXEC, bin))) {
      if (process.env.CI) throw new Error(`CI is missing ${LIBEXEC}/${bin} (dovecot-imapd)`);
      return `missing ${LIBEXEC}/${bin} (dovecot-imapd)`;
    }
  }
  if (process.getuid?.() !== 0) return 'Dovecot runs its mail processes as another user: needs root';
  return false;
}

export interface DovecotImap {
  port: number;
  dir: string;
  /** deliver - a message into USER's INBOX through dovecot-lda (Dovecot's own delivery path). */
  deliver(user: string, body: Buffer | string): void;
  /** log - Dovecot's log so far (for failure messages). */
  log(): string;
  stop(): void;
}

export interface DovecotOptions {
  /** Maildirs (one folder per user) to serve instead of empty ones; chowned to nobody. */
  mailDir?: string;
  /** Connections per user and IP (and, above 50, process and client limits to match). */
  connections?: number;
}

/**
 * startDovecotImap - Dovecot with plaintext LOGIN on loopback for USERS (name -> password),
 * Maildir++ with `.` as separator, and the special-use folders FancyMail creates (and, with INBOX,
 * subscribes) for everyone.
 */
export async function startDovecotImap(users: Record<string, string>, opts: DovecotOptions = {}): Promise<DovecotImap> {
  const tmp = tempDir('fmail-dovecot-');
  const dir = tmp.dir;
  const mail = opts.mailDir ?? path.join(dir, 'mail');
  const connections = opts.connections ?? 50;
  // Dovecot's processes (nobody, dovenull) must reach their files under the temp folder.
  chmodSync(dir, 0o755);
  for (const d of ['run', 'state', 'home', 'mail']) mkdirSync(path.join(dir, d));
  spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, path.join(dir, 'home'), mail]);
  writeFileSync(path.join(dir, 'passwd'), Object.entries(users).map(([u, p]) => `${u}:{PLAIN}${p}\n`).join(''));
  const port = await freePort();
  const conf = path.join(dir, 'dovecot.conf');
  const special = [
    ['Sent', '\\Sent'],
    ['Drafts', '\\Drafts'],
    ['Trash', '\\Trash'],
    ['Junk', '\\Junk'],
    ['Archive', '\\Archive'],
  ];
  writeFileSync(
    conf,
    [
      `base_dir = ${dir}/run`,
      `state_dir = ${dir}/state`,
      'protocols = imap',
      'listen = 127.0.0.1',
      'ssl = no',
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain',
      'auth_failure_delay = 0',
      // No growing penalty for the failed logins tests make on purpose.
      'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}',
      'default_internal_user = root',
      'default_internal_group = root',
      'default_login_user = dovenull',
      `mail_location = maildir:${mail}/%u`,
      `log_path = ${dir}/dovecot.log`,
      `mail_max_userip_connections = ${connections}`,
      ...(connections > 50 ? [`default_client_limit = ${connections + 100}`, `default_process_limit = ${connections + 100}`, `service imap {\n  process_limit = ${connections + 100}\n}`] : []),
      `passdb {\n  driver = passwd-file\n  args = ${dir}/passwd\n}`,
      `userdb {\n  driver = static\n  args = uid=${NOBODY} gid=${NOBODY} home=${dir}/home/%u\n}`,
      'namespace inbox {',
      '  inbox = yes',
      '  separator = .',
      '  mailbox INBOX {\n    auto = subscribe\n  }',
      ...special.map(([name, use]) => `  mailbox ${name} {\n    special_use = ${use}\n    auto = subscribe\n  }`),
      '}',
      `service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
      '',
    ].join('\n'),
  );
  // stdio ignored: the master daemonizes, and a pipe it inherited would hold spawnSync open.
  const started = spawnSync('dovecot', ['-c', conf], { stdio: 'ignore', timeout: 30_000 });
  const log = (): string => {
    try {
      return readFileSync(path.join(dir, 'dovecot.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const stop = (): void => {
    spawnSync('dovecot', ['-c', conf, 'stop'], { stdio: 'ignore', timeout: 30_000 });
    tmp.cleanup();
  };
  if (started.status !== 0) {
    const why = `dovecot did not start (exit ${started.status}): ${log()}`;
    tmp.cleanup();
    throw new Error(why);
  }
  // The master forks its listeners: wait until the port answers (bounded).
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (i >= 100) {
      const why = `dovecot is not listening on ${port}: ${log()}`;
      stop();
      throw new Error(why);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    dir,
    log,
    stop,
    deliver(user, body) {
      const r = spawnSync(path.join(LIBEXEC, 'dovecot-lda'), ['-c', conf, '-d', user, '-f', 'sender@remote.test'], { input: body, encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0) throw new Error(`dovecot-lda for ${user}: exit ${r.status} ${r.stderr}`);
    },
  };
}
