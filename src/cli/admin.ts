// Administration commands: `fmail init`, `fmail check`, `fmail status`, `fmail trace QID`.

import { createReadStream, existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';

import type { Command } from 'commander';

import { sampleConfig } from '../config/describe.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { IpcClient } from '../ipc/index.js';
import { ipcSecret } from '../shared/ipc-secret.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('write a commented fmail.toml with every setting at its default')
    .argument('[file]', 'where to write it', 'fmail.toml')
    .option('-f, --force', 'overwrite an existing file')
    .action((file: string, opts: { force?: boolean }) => {
      if (existsSync(file) && !opts.force) throw new Error(`${file} exists; use --force to overwrite`);
      writeFileSync(file, sampleConfig(), { mode: 0o640 });
      process.stdout.write(`wrote ${file}; start with: fmail start -c ${file}\n`);
    });

  program
    .command('check')
    .description('validate a configuration file and print the effective data folder')
    .option('-c, --config <file>', 'configuration file (TOML)')
    .action((opts: { config?: string }) => {
      const cfg = loadConfig(opts.config);
      process.stdout.write(`configuration ok; data in ${cfg.data_dir}\n`);
    });

  program
    .command('status')
    .description('ping every server and print its address, version, uptime and queue counts')
    .option('-c, --config <file>', 'configuration file (TOML)')
    .action(async (opts: { config?: string }) => {
      const cfg = loadConfig(opts.config);
      process.exitCode = (await printStatus(cfg)) ? 0 : 1;
    });

  program
    .command('trace')
    .description('the life of one message through every server, from the logs')
    .argument('<qid>', 'queue id, as in "250 2.0.0 Ok: queued as QID"')
    .option('-c, --config <file>', 'configuration file (TOML)')
    .option('--log <file>', 'log file to read (default: [log] file)')
    .action(async (qid: string, opts: { config?: string; log?: string }) => {
      const cfg = loadConfig(opts.config);
      const file = opts.log ?? cfg.log.file;
      if (file === '-' || !existsSync(file)) throw new Error(`no log file to read (${file}); pass --log FILE`);
      const found = await traceMessage(file, qid, (line) => process.stdout.write(line + '\n'));
      if (found === 0) {
        process.stderr.write(`no log lines for ${qid} in ${file}\n`);
        process.exitCode = 1;
      }
    });
}

const IPC_SERVERS = [
  ['authd', 'authd'],
  ['queued', 'queued'],
  ['mailboxd', 'mailboxd'],
  ['smtp-out', 'smtp_out'],
  ['router', 'router'],
] as const;

async function printStatus(cfg: Config): Promise<boolean> {
  let allUp = true;
  const secret = ipcSecret(cfg);
  for (const [name, key] of IPC_SERVERS) {
    const client = new IpcClient(cfg.ipc[key], { timeoutMs: 3000, connectTimeoutMs: 2000, secret });
    try {
      const r = await client.request('status');
      const [, version, uptime, conns] = r.params;
      process.stdout.write(`${name.padEnd(9)} up    ${cfg.ipc[key].padEnd(32)} v${version} uptime ${formatUptime(Number(uptime))} connections ${conns}\n`);
      if (name === 'queued') await printQueueCounts(client);
    } catch (err) {
      allUp = false;
      process.stdout.write(`${name.padEnd(9)} DOWN  ${cfg.ipc[key].padEnd(32)} ${(err as Error).message}\n`);
    } finally {
      client.close();
    }
  }
  for (const [name, port] of [
    ['smtpd', cfg.smtpd.port],
    ['pop3d', cfg.pop3d.port],
    ['imapd', cfg.imapd.port],
  ] as const) {
    if (port <= 0) continue;
    const host = cfg.smtpd.host === '0.0.0.0' || cfg.smtpd.host === '::' ? '127.0.0.1' : cfg.smtpd.host;
    const banner = await readBanner(host, port);
    if (!banner) allUp = false;
    process.stdout.write(`${name.padEnd(9)} ${banner ? 'up  ' : 'DOWN'}  ${`${host}:${port}`.padEnd(32)} ${banner ?? 'no answer'}\n`);
  }
  return allUp;
}

async function printQueueCounts(client: IpcClient): Promise<void> {
  try {
    const res = await client.requestList('qstats');
    if (!res.reply.ok) return;
    for (const item of res.items) process.stdout.write(`          queue ${item.params.join(' ')}\n`);
  } catch {
    // An older queued without qstats: status still shows it up.
  }
}

function formatUptime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d}d${h}h` : h ? `${h}h${m}m` : `${m}m${s % 60}s`;
}

function readBanner(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = net.connect(port, host);
    const done = (v: string | null): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), 3000);
    sock.once('data', (d) => done(d.toString('utf8').split('\r\n')[0]!.slice(0, 100)));
    sock.once('error', () => done(null));
  });
}

/** traceMessage - print each log line about QID (or a message derived from it); returns the count. */
export async function traceMessage(file: string, qid: string, print: (line: string) => void): Promise<number> {
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  // Threads and processes buffer their logs separately: gather, then print in time order.
  const found: Array<{ time: string; text: string }> = [];
  const ids = new Set([qid]);
  for await (const line of rl) {
    if (!line.includes('"')) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const mine = ids.has(String(rec.qid)) || ids.has(String(rec.orig_qid));
    if (!mine) continue;
    // A bounce or a relay copy has its own qid; follow it too.
    if (rec.orig_qid && rec.qid) ids.add(String(rec.qid));
    const { time, server, event, msg, qid: q, pid: _pid, level: _level, hostname: _h, ...rest } = rec;
    const details = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    found.push({
      time: String(time ?? ''),
      text: `${String(time ?? '')} ${String(server ?? '-').padEnd(8)} ${String(event ?? msg ?? '').padEnd(22)} ${q === qid ? '' : `qid=${String(q)} `}${details}`,
    });
  }
  found.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  for (const f of found) print(f.text);
  return found.length;
}
