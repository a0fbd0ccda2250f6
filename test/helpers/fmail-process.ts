// Runs the real `fmail` command as child processes, the way an administrator does: a config
// file in a temp folder, IPC on Unix sockets in it, SMTP/POP3 on free loopback ports.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { freePort } from './tmp.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const FMAIL = path.join(ROOT, 'bin/fmail.js');

export interface FmailPorts {
  smtp: number;
  submission: number;
  submissions: number;
  pop3: number;
  pop3s: number;
  imap: number;
  imaps: number;
}

export interface FmailSetup {
  dir: string;
  configFile: string;
  ports: FmailPorts;
  /** the TOML the test added, kept so the file can be rewritten with other ports */
  extraToml: string;
}

/** writeFmailConfig - a config file for `fmail start -c`, extra TOML appended verbatim. */
export async function writeFmailConfig(dir: string, extraToml = ''): Promise<FmailSetup> {
  mkdirSync(dir, { recursive: true });
  const ports = await freshPorts();
  const configFile = path.join(dir, 'fmail.toml');
  writeFileSync(configFile, configToml(dir, ports, extraToml));
  return { dir, configFile, ports, extraToml };
}

async function freshPorts(): Promise<FmailPorts> {
  return {
    smtp: await freePort(),
    submission: await freePort(),
    submissions: await freePort(),
    pop3: await freePort(),
    pop3s: await freePort(),
    imap: await freePort(),
    imaps: await freePort(),
  };
}

function configToml(dir: string, ports: FmailPorts, extraToml: string): string {
  const toml = [
    `data_dir = ${JSON.stringify(dir)}`,
    'hostname = "mx.fancymail.test"',
    '[log]',
    `level = "${process.env.FMAIL_TEST_LOG ?? 'info'}"`,
    '[metrics]',
    'listen = ""',
    '[ipc]',
    ...['authd', 'queued', 'smtp_out', 'mailboxd', 'router', 'imapd'].map((k) => `${k} = "unix://${dir}/${k}.sock"`),
    '[smtpd]',
    'host = "127.0.0.1"',
    `port = ${ports.smtp}`,
    `submission_port = ${ports.submission}`,
    `submissions_port = ${ports.submissions}`,
    '[pop3d]',
    'host = "127.0.0.1"',
    `port = ${ports.pop3}`,
    `pop3s_port = ${ports.pop3s}`,
    '[imapd]',
    'host = "127.0.0.1"',
    `port = ${ports.imap}`,
    `imaps_port = ${ports.imaps}`,
    // No lookups to the machine's resolver from tests (see test/helpers/config.ts).
    ...(extraToml.includes('[mail_auth]') ? [] : ['[mail_auth]', 'check = false']),
    extraToml,
  ].join('\n');
  return toml + '\n';
}

/** fmailSync - run one fmail command to completion (e.g. `user add`). */
export function fmailSync(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, [FMAIL, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** fmailAsync - like fmailSync, without blocking this process (for servers running in it); ENV added to ours. */
export async function fmailAsync(
  args: string[],
  input?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [FMAIL, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { status, stdout, stderr };
}

export interface FmailProcess {
  child: ChildProcess;
  output: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * startFmail - `fmail start [servers] -c CONFIG`; resolves once it says it is running. If a port
 * was taken in the meantime by another test's process (EADDRINUSE), the config is rewritten with
 * another port in its place (setup.ports changes in place) and started again, at most 3 times.
 */
export interface StartFmailOptions {
  /**
   * In a session of its own (setsid), as a service runs (benchmarks): with the kernel's
   * autogroup scheduling a session is one CPU share, and a daemonised peer (Postfix, Dovecot)
   * has one to itself while a child of ours would share the benchmark client's.
   */
  detached?: boolean;
}

export async function startFmail(setup: FmailSetup, servers: string[] = [], timeoutMs = 30_000, opts: StartFmailOptions = {}): Promise<FmailProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startFmailOnce(setup, servers, timeoutMs, opts);
    } catch (err) {
      // Only the port named in the error is replaced: servers already started keep theirs.
      const taken = Number(/EADDRINUSE.*?:(\d+)/.exec(String(err))?.[1]);
      const key = (Object.keys(setup.ports) as (keyof FmailPorts)[]).find((k) => setup.ports[k] === taken);
      if (!key || attempt >= 3) throw err;
      setup.ports[key] = await freePort();
      writeFileSync(setup.configFile, configToml(setup.dir, setup.ports, setup.extraToml));
    }
  }
}

async function startFmailOnce(setup: FmailSetup, servers: string[], timeoutMs: number, opts: StartFmailOptions): Promise<FmailProcess> {
  const child = spawn(process.execPath, [...(process.env.FMAIL_NODE_ARGS ? process.env.FMAIL_NODE_ARGS.split(' ') : []), FMAIL, 'start', ...servers, '-c', setup.configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached === true,
  });
  if (opts.detached) {
    // Not in our process group any more: our own end must end it too.
    const stop = (): void => void (child.exitCode === null && child.signalCode === null && child.kill('SIGTERM'));
    process.once('exit', stop);
    child.once('exit', () => process.removeListener('exit', stop));
  }
  const output: string[] = [];
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fmail start did not come up: ${output.join('')}`)), timeoutMs);
    lines.on('line', (line) => {
      output.push(line);
      if (line.includes('running')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fmail start exited with ${code}: ${output.join('\n')}`));
    });
  });
  await ready;
  return {
    child,
    output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}
