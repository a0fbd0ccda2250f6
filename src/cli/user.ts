// `fmail user add|passwd|del|list` and `fmail alias add|del|list` - edit DATA/users and
// DATA/aliases (see src/authd). Works whether authd runs or not: authd notices the change.
// Passwords come from --password-stdin or a hidden prompt on a terminal, never from argv
// (argv is visible to every local user in `ps`).

import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

import type { Command } from 'commander';

import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { canonicalUser, isSafeUserName } from '../mail/address.js';
import { deleteAlias, parseAliases, setAlias } from '../authd/aliases-file.js';
import { editFile } from '../authd/edit.js';
import { argon2Params, readText, usersFiles } from '../authd/files.js';
import { hashPassword, schemeOf } from '../authd/password.js';
import { deleteUser, parseUsers, setUser } from '../authd/users-file.js';

const MAX_PASSWORD_BYTES = 4096;

interface Opts {
  config?: string;
  passwordStdin?: boolean;
  long?: boolean;
}

export function register(program: Command): void {
  const user = program.command('user').description('manage mail users (DATA/users, Dovecot passwd-file format)');
  const alias = program.command('alias').description('manage aliases (DATA/aliases): addresses that deliver to users');

  const cfgOpt = (c: Command): Command => c.option('-c, --config <file>', 'configuration file (TOML); defaults apply when absent');

  cfgOpt(user.command('add').description('add a user; the password is read from --password-stdin or prompted'))
    .argument('<address>', 'full address, e.g. alice@example.test')
    .option('--password-stdin', 'read the password from standard input (one line)')
    .action(async (address: string, opts: Opts) => {
      const cfg = loadConfig(opts.config);
      const name = checkName(address);
      const { usersFile, aliasesFile } = usersFiles(cfg);
      if (readUsers(usersFile).some((u) => u.user === name)) throw new Error(`user ${name} exists; use: fmail user passwd ${name}`);
      if (readAliases(aliasesFile).some((a) => a.alias === name)) throw new Error(`${name} is an alias; remove it first: fmail alias del ${name}`);
      const hash = await newHash(cfg, opts);
      await editFile(usersFile, (text) => {
        if (parseUsers(text).users.some((u) => u.user === name)) throw new Error(`user ${name} exists`);
        return setUser(text, name, hash);
      });
      process.stdout.write(`added ${name}\n`);
    });

  cfgOpt(user.command('passwd').description('set a new password for a user'))
    .argument('<address>', 'the user')
    .option('--password-stdin', 'read the password from standard input (one line)')
    .action(async (address: string, opts: Opts) => {
      const cfg = loadConfig(opts.config);
      const name = checkName(address);
      const { usersFile } = usersFiles(cfg);
      if (!readUsers(usersFile).some((u) => u.user === name)) throw new Error(`no user ${name}`);
      const hash = await newHash(cfg, opts);
      await editFile(usersFile, (text) => {
        if (!parseUsers(text).users.some((u) => u.user === name)) throw new Error(`no user ${name}`);
        return setUser(text, name, hash);
      });
      process.stdout.write(`password changed for ${name}\n`);
    });

  cfgOpt(user.command('del').description('remove a user (the mailbox folder is left in place)'))
    .argument('<address>', 'the user')
    .action(async (address: string, opts: Opts) => {
      const cfg = loadConfig(opts.config);
      const name = checkName(address);
      const changed = await editFile(usersFiles(cfg).usersFile, (text) => deleteUser(text, name));
      if (!changed) throw new Error(`no user ${name}`);
      process.stdout.write(`removed ${name}\n`);
    });

  cfgOpt(user.command('list').description('print the users, one a line'))
    .option('-l, --long', 'also print each password scheme')
    .action((opts: Opts) => {
      const cfg = loadConfig(opts.config);
      for (const u of readUsers(usersFiles(cfg).usersFile)) {
        const scheme = u.password ? schemeOf(u.password).scheme : '(no password)';
        process.stdout.write(opts.long ? `${u.user}\t${scheme}\n` : `${u.user}\n`);
      }
    });

  cfgOpt(alias.command('add').description('make ALIAS deliver to TARGETs (added to its existing targets)'))
    .argument('<alias>', 'the alias address, e.g. sales@example.test')
    .argument('<targets...>', 'user addresses (or other aliases)')
    .action(async (aliasName: string, targets: string[], opts: Opts) => {
      const cfg = loadConfig(opts.config);
      const name = checkName(aliasName);
      const ts = targets.map(checkName);
      const { usersFile, aliasesFile } = usersFiles(cfg);
      const users = readUsers(usersFile);
      if (users.some((u) => u.user === name)) throw new Error(`${name} is a user; an alias cannot have its name`);
      let all: string[] = [];
      await editFile(
        aliasesFile,
        (text) => {
          const old = parseAliases(text).aliases.find((a) => a.alias === name);
          all = [...new Set([...(old?.targets ?? []), ...ts])];
          return setAlias(text, name, all);
        },
        0o644,
      );
      const known = new Set([...users.map((u) => u.user), ...readAliases(aliasesFile).map((a) => a.alias)]);
      for (const t of ts) if (!known.has(t)) process.stderr.write(`note: ${t} is not a user or alias (yet)\n`);
      process.stdout.write(`${name}: ${all.join(', ')}\n`);
    });

  cfgOpt(alias.command('del').description('remove an alias, or only the TARGETs named'))
    .argument('<alias>', 'the alias address')
    .argument('[targets...]', 'targets to remove (default: the whole alias)')
    .action(async (aliasName: string, targets: string[], opts: Opts) => {
      const cfg = loadConfig(opts.config);
      const name = checkName(aliasName);
      const drop = new Set(targets.map(checkName));
      let found = false;
      await editFile(usersFiles(cfg).aliasesFile, (text) => {
        const old = parseAliases(text).aliases.find((a) => a.alias === name);
        if (!old) return null;
        found = true;
        const rest = old.targets.filter((t) => !drop.has(t));
        return drop.size === 0 || rest.length === 0 ? deleteAlias(text, name) : setAlias(text, name, rest);
      });
      if (!found) throw new Error(`no alias ${name}`);
      process.stdout.write(`updated ${name}\n`);
    });

  cfgOpt(alias.command('list').description('print the aliases, `alias: target, target`'))
    .action((opts: Opts) => {
      const cfg = loadConfig(opts.config);
      for (const a of readAliases(usersFiles(cfg).aliasesFile)) process.stdout.write(`${a.alias}: ${a.targets.join(', ')}\n`);
    });
}

function checkName(address: string): string {
  const name = canonicalUser(address);
  if (!isSafeUserName(name)) throw new Error(`not a valid address: ${JSON.stringify(address)}`);
  return name;
}


const readUsers = (file: string) => parseUsers(readText(file)).users;
const readAliases = (file: string) => parseAliases(readText(file)).aliases;

/** newHash - read the new password (stdin or prompt) and hash it with the configured cost. */
async function newHash(cfg: Config, opts: Opts): Promise<string> {
  let password: string;
  if (opts.passwordStdin) {
    password = await readStdinPassword();
  } else if (process.stdin.isTTY) {
    password = await prompt('New password: ');
    if ((await prompt('Again: ')) !== password) throw new Error('the passwords differ');
  } else {
    throw new Error('no password: use --password-stdin, or run on a terminal to be asked');
  }
  if (password === '') throw new Error('empty password refused');
  return hashPassword(password, argon2Params(cfg));
}

// The first line of stdin, without its line end; everything else (spaces, `;`, Unicode) is kept.
async function readStdinPassword(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
    if (size > MAX_PASSWORD_BYTES) throw new Error('password too long');
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const nl = text.indexOf('\n');
  return (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, '');
}

// A prompt that does not echo what is typed.
async function prompt(question: string): Promise<string> {
  process.stderr.write(question);
  const muted = new Writable({ write: (_chunk, _enc, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}
