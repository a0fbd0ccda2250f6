// A private PostgreSQL for tests, from Debian's `postgresql` package: a cluster made with initdb
// in a temp folder, its own TCP port on 127.0.0.1 and its Unix socket in that folder, stopped
// and removed afterwards. initdb and postgres refuse to run as root (CI is root): then they run
// as `nobody`, the folder chowned to it.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';

import { freePort } from './tmp.js';

export interface TestPostgres {
  /** A URL for database NAME (made by createDatabase, or `postgres`). */
  url(name?: string): string;
  /** socketUrl - the same over the Unix socket (for a client in another network namespace). */
  socketUrl(name?: string): string;
  createDatabase(name: string): Promise<string>;
  /** stop - a fast shutdown; resolves once the server exited. */
  stop(): Promise<void>;
  /** start - again, on the same data folder and port (a restart). */
  start(): Promise<void>;
  /** pid - the postmaster's process id (its backends are its children), or 0 when stopped. */
  pid(): number;
  /** cleanup - stop if running and remove the folder. */
  cleanup(): Promise<void>;
}

/** pgBinDir - the newest /usr/lib/postgresql/VERSION/bin with initdb, or null. */
export function pgBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0]!, 'bin') : null;
}

/** Why tests that need PostgreSQL are skipped, or false when they can run. */
export const NO_POSTGRES: string | false = pgBinDir() === null ? 'no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)' : false;

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

function command(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'nobody', '--', bin, ...args]] : [bin, args];
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = pgBinDir();
  if (!bin) throw new Error(NO_POSTGRES as string);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fmail-pg-'));
  const data = path.join(dir, 'data');
  if (asRoot) chownSync(dir, NOBODY, NOBODY);
  const [cmd, args] = command(path.join(bin, 'initdb'), ['-D', data, '-U', 'fmail', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
  const port = await freePort();
  let proc: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    const [c, a] = command(path.join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200']);
    const p = spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`postgres did not start within 60 s:\n${log}`)), 60_000);
      p.stderr!.setEncoding('utf8');
      p.stderr!.on('data', (d: string) => {
        log = (log + d).slice(-20_000);
        if (/database system is ready to accept connections/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      p.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`postgres exited (${code}) while starting:\n${log}`));
      });
    });
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // The postmaster itself (runuser does not pass signals on): SIGINT is a fast shutdown.
    let pid = p.pid!;
    try {
      pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      // Not written yet: the process we started.
    }
    process.kill(pid, 'SIGINT');
    const timer = setTimeout(() => process.kill(pid, 'SIGQUIT'), 30_000);
    await exited;
    clearTimeout(timer);
  };

  const url = (name = 'postgres'): string => `postgres://fmail@127.0.0.1:${port}/${name}`;
  await start();
  return {
    url,
    socketUrl: (name = 'postgres') => `postgres://fmail@/${name}?host=${encodeURIComponent(dir)}&port=${port}`,
    async createDatabase(name: string): Promise<string> {
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    stop,
    start,
    pid(): number {
      try {
        return proc ? Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) : 0;
      } catch {
        return 0;
      }
    },
    async cleanup(): Promise<void> {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
