// directory - the user database in memory: users, aliases, local domains, and `resolve`.
//
// "Fresh on every answer": before answering, `refresh()` stats both files (at most every
// 20 ms, so a busy server does not stat twice per request) and re-reads them when size,
// mtime or inode changed; the fs.watch in index.ts only makes the
// reload happen sooner. A new snapshot is built completely, then swapped in, so a request sees
// either the old files or the new ones, never half of each.

import { statSync } from 'node:fs';

import type { Logger } from 'pino';

import { canonicalUser, domainOf, isSafeUserName, localPartOf } from '../mail/address.js';
import { parseAliases } from './aliases-file.js';
import { readText } from './files.js';
import type { AuthdConfig } from './config.js';
import { isSupportedScheme } from './password.js';
import { parseUsers } from './users-file.js';

const MAX_ALIAS_DEPTH = 10;
const STAT_INTERVAL_MS = 20;
const IMPLICIT = new Set(['postmaster', 'abuse']);

interface Snapshot {
  users: Map<string, string>; // user -> stored password
  mailhosts: Map<string, string>; // user -> its mailboxd's IPC address (only users that have one)
  aliases: Map<string, string[]>;
  firstUserOf: Map<string, string>; // domain -> first user in file order
  domains: Set<string>;
}

export interface DirectoryOptions {
  usersFile: string;
  aliasesFile: string;
  authd: AuthdConfig;
  logger: Logger;
}

export class Directory {
  private snap: Snapshot = { users: new Map(), mailhosts: new Map(), aliases: new Map(), firstUserOf: new Map(), domains: new Set() };
  private stamp = '';
  private lastStat = 0;

  constructor(private opts: DirectoryOptions) {
    this.refresh(true);
  }

  /** configure - new settings (SIGHUP); files are re-read. */
  configure(opts: DirectoryOptions): void {
    this.opts = opts;
    this.refresh(true);
  }

  get userCount(): number {
    return this.snap.users.size;
  }

  /** recheck - a file may have changed (fs.watch said so): look now, whatever the interval. */
  recheck(): void {
    this.lastStat = 0;
    this.refresh();
  }

  /** refresh - re-read the files if they changed since the last read (or when forced). */
  refresh(force = false): void {
    // Under load, stat the files at most every STAT_INTERVAL_MS (the fs.watch in index.ts
    // forces a refresh as soon as the CLI replaces a file).
    const now = Date.now();
    if (!force && now - this.lastStat < STAT_INTERVAL_MS) return;
    this.lastStat = now;
    const stamp = fileStamp(this.opts.usersFile) + '|' + fileStamp(this.opts.aliasesFile);
    if (!force && stamp === this.stamp) return;
    this.stamp = stamp;
    try {
      this.snap = this.load();
    } catch (err) {
      // An unreadable file must not log everyone out: keep answering from the last good read.
      this.opts.logger.error({ event: 'authd.read_failed', err: String(err) }, 'cannot read the user database; keeping the previous one');
    }
  }

  /** password - the stored password of a real user (not an alias), or undefined. */
  password(user: string): string | undefined {
    return this.snap.users.get(user);
  }

  /** mailhost - the IPC address of a real user's mailboxd ('' = the configured one). */
  mailhost(user: string): string {
    return this.snap.mailhosts.get(user) ?? '';
  }

  /** isLocalDomain - a domain of a user or alias, or listed in [authd] local_domains. */
  isLocalDomain(domain: string): boolean {
    return this.snap.domains.has(domain.trim().toLowerCase());
  }

  /** resolve - the local users ADDRESS delivers to (itself, alias targets, ...); [] when none. */
  resolve(address: string): string[] {
    const a = canonicalUser(address);
    if (!isSafeUserName(a)) return [];
    const out = new Set<string>();
    this.expand(a, 0, new Set(), out);
    return [...out];
  }

  private expand(a: string, depth: number, seen: Set<string>, out: Set<string>): void {
    if (depth > MAX_ALIAS_DEPTH || seen.has(a)) return;
    seen.add(a);
    const { users, aliases } = this.snap;
    if (users.has(a)) {
      out.add(a);
      return;
    }
    const targets = aliases.get(a);
    if (targets) {
      for (const t of targets) this.expand(t, depth + 1, seen, out);
      return;
    }
    const local = localPartOf(a);
    const domain = domainOf(a);
    if (IMPLICIT.has(local) && this.snap.domains.has(domain)) {
      const target = this.opts.authd.postmaster ? canonicalUser(this.opts.authd.postmaster) : this.snap.firstUserOf.get(domain);
      if (target) this.expand(target, depth + 1, seen, out);
      return;
    }
    const delim = this.opts.authd.recipient_delimiter;
    if (delim) {
      const cut = local.indexOf(delim);
      if (cut > 0) this.expand(`${local.slice(0, cut)}@${domain}`, depth + 1, seen, out);
    }
  }

  private load(): Snapshot {
    const { logger, usersFile, aliasesFile, authd } = this.opts;
    const snap: Snapshot = { users: new Map(), mailhosts: new Map(), aliases: new Map(), firstUserOf: new Map(), domains: new Set() };
    const u = parseUsers(readText(usersFile));
    for (const p of u.problems) logger.warn({ event: 'authd.bad_line', file: usersFile, line: p.line, reason: p.reason }, 'users file: line skipped');
    for (const e of u.users) {
      if (e.password && !isSupportedScheme(e.password)) {
        logger.warn({ event: 'authd.bad_scheme', file: usersFile, line: e.line, user: e.user }, 'users file: unsupported password scheme; this user cannot log in');
      }
      snap.users.set(e.user, e.password);
      if (e.mailhost) snap.mailhosts.set(e.user, e.mailhost);
      const d = domainOf(e.user);
      snap.domains.add(d);
      if (!snap.firstUserOf.has(d)) snap.firstUserOf.set(d, e.user);
    }
    const a = parseAliases(readText(aliasesFile));
    for (const p of a.problems) logger.warn({ event: 'authd.bad_line', file: aliasesFile, line: p.line, reason: p.reason }, 'aliases file: line skipped');
    for (const e of a.aliases) {
      if (snap.users.has(e.alias)) {
        logger.warn({ event: 'authd.bad_line', file: aliasesFile, line: e.line, reason: `${e.alias} is a user` }, 'aliases file: alias shadowed by a user');
        continue;
      }
      snap.aliases.set(e.alias, e.targets);
      snap.domains.add(domainOf(e.alias));
    }
    for (const d of authd.local_domains) snap.domains.add(d.trim().toLowerCase());
    logger.info({ event: 'authd.loaded', users: snap.users.size, aliases: snap.aliases.size, domains: snap.domains.size }, 'user database loaded');
    return snap;
  }
}

function fileStamp(file: string): string {
  const st = statSync(file, { throwIfNoEntry: false, bigint: true });
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` : 'none';
}

