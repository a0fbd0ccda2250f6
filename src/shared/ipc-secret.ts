// The IPC shared secret: where every server and every FancyMail client gets it.
//
// `[ipc] secret` (or FMAIL_IPC_SECRET, applied by loadConfig) wins; "off" disables the
// handshake (loopback only, `fmail start` warns); empty, the default, means the secret kept in
// DATA/ipc.secret, generated on first use with mode 0600 in a 0700 data folder (as Postfix keeps
// its private sockets, and Dovecot its auth socket 0600). A local user who cannot read the data
// folder cannot talk to any server.

import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';

import type { Config } from '../config/schema.js';

export const IPC_SECRET_FILE = 'ipc.secret';
export const IPC_SECRET_OFF = 'off';

/** ipcSecretPath - DATA/ipc.secret. */
export function ipcSecretPath(config: Config): string {
  return path.join(config.data_dir, IPC_SECRET_FILE);
}

/**
 * ipcSecret - the secret to require (servers) or present (clients); undefined when "off".
 * With `create`, a missing DATA/ipc.secret is generated (servers); without it a missing file
 * means no secret to present (a client run before any server ever started).
 */
export function ipcSecret(config: Config, opts: { create?: boolean } = {}): string | undefined {
  const configured = config.ipc.secret;
  if (configured === IPC_SECRET_OFF) return undefined;
  if (configured) return configured;
  const file = ipcSecretPath(config);
  const existing = readSecret(file);
  if (existing !== null || !opts.create) return existing ?? undefined;
  return createSecret(config.data_dir, file);
}

/** ensureDataDir - the data folder, created 0700; one we own is tightened to 0700 too. */
export function ensureDataDir(dir: string): { tightened: boolean; openTo: string | null } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if ((st.mode & 0o077) === 0) return { tightened: false, openTo: null };
  // Only a folder of ours, and never a shared one like /tmp (sticky), is changed.
  if (typeof process.getuid === 'function' && st.uid === process.getuid() && (st.mode & 0o1000) === 0) {
    chmodSync(dir, 0o700);
    return { tightened: true, openTo: null };
  }
  return { tightened: false, openTo: (st.mode & 0o777).toString(8) };
}

function readSecret(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read the IPC secret ${file}: ${(err as Error).message}`);
  }
  const secret = text.trim();
  if (!secret) throw new Error(`the IPC secret file ${file} is empty: remove it to have a new one generated`);
  return secret;
}

// Written to a temp file and linked into place, so a reader never sees half a secret and two
// servers starting at once agree on one (the second link fails with EEXIST and reads the first).
function createSecret(dir: string, file: string): string {
  ensureDataDir(dir);
  const secret = randomBytes(32).toString('hex');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${secret}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readSecret(file) ?? secret;
  } finally {
    rmSync(tmp, { force: true });
  }
}
