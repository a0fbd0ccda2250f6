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
    .description('the life of one message through every server, from the logs (several hosts: one --log each)')
    .argument('<qid>', 'queue id, as in "250 2.0.0 Ok: queued as QID"')
    .option('-c, --config <file>', 'configuration file (TOML)')
    .option('--log <file>', 'log file to read, "-" = standard input; repeat it to merge hosts\' logs (default: [log] file)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (qid: string, opts: { config?: string; log: string[] }) => {
      const cfg = loadConfig(opts.config);
      const files = opts.log.length ? opts.log : [cfg.log.file];
      for (const f of files) if (f !== '-' && !existsSync(f)) throw new Error(`no log file to read (${f}); pass --log FILE`);
      if (files.length === 1 && files[0] === '-' && !opts.log.length) throw new Error('the log goes to standard output ([log] file = "-"); pass --log FILE');
      const found = await traceMessage(files, qid, (line) => process.stdout.write(line + '\n'));
      if (found === 0) {
        process.stderr.write(`no log lines for ${qid} in ${files.join(', ')}\n`);
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

/** statusClient - a client that gives up quickly: status reports a silent server as down. */
const statusClient = (address: string, secret: string | undefined): IpcClient => new IpcClient(address, { timeoutMs: 3000, connectTimeoutMs: 2000, secret });

async function printStatus(cfg: Config): Promise<boolean> {
  let allUp = true;
  const secret = ipcSecret(cfg);
  for (const [name, key] of IPC_SERVERS) {
    const client = statusClient(cfg.ipc[key], secret);
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
  const everyHost = await printEveryHost(cfg, secret);
  // The front ends this configuration names are probed only when no host announced its own
  // (several hosts: each runs some of them, and the directory says which).
  if (everyHost !== null) return everyHost && allUp;
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

/**
 * printEveryHost - the servers every host announced to queued (shared/announce.ts), each
 * checked from here: IPC `status` or the protocol banner. One not heard from for three
 * announce periods is shown as stale rather than down (a host taken out of service).
 * null: no directory to show (queued down, or nothing announced yet).
 */
async function printEveryHost(cfg: Config, secret: string | undefined): Promise<boolean | null> {
  const client = statusClient(cfg.ipc.queued, secret);
  let items: Array<{ params: string[] }>;
  try {
    const res = await client.requestList('servers');
    if (!res.reply.ok) return null;
    items = res.items;
  } catch {
    return null; // queued down (reported above) or older than the directory
  } finally {
    client.close();
  }
  if (items.length === 0) return null;
  process.stdout.write('every host (as announced to queued):\n');
  const staleS = Math.max(3 * cfg.ipc.announce_s, 180);
  const checks = await Promise.all(
    items.map(async ({ params }) => {
      const [host = '', server = '', addresses = '', version = '', uptime = '', seen = ''] = params;
      // A front end is checked by its protocol banner; the others by IPC `status`.
      const listeners = addresses.split(',').map((pair) => pair.replace(/^[^=]*=/, ''));
      const target = listeners.find((a) => !/^(socket|unix):\/\//.test(a)) ?? listeners[0] ?? '';
      const answer = target ? await probe(target, secret) : null;
      const stale = Number(seen) > staleS;
      const state = answer ? 'up  ' : stale ? 'stale' : 'DOWN';
      const line = `${server.padEnd(9)} ${state.padEnd(5)} ${host.padEnd(24)} ${addresses}  v${version} up ${formatUptime(Number(uptime))}, seen ${seen}s ago; ${answer ?? 'no answer'}`;
      return { ok: answer !== null || stale, line };
    }),
  );
  for (const c of checks) process.stdout.write(c.line + '\n');
  return checks.every((c) => c.ok);
}

/** probe - an IPC address's `status` version, or a HOST:PORT's banner; null when nothing answers. */
async function probe(address: string, secret: string | undefined): Promise<string | null> {
  if (/^(socket|unix):\/\//.test(address)) {
    const c = statusClient(address, secret);
    try {
      const r = await c.request('status');
      return r.ok ? `${r.params[3] ?? '?'} IPC connections` : null;
    } catch {
      return null;
    } finally {
      c.close();
    }
  }
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  return m ? readBanner(m[1]!, Number(m[2])) : null;
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

/**
 * traceMessage - print each log line about QID (or a message derived from it) from FILES (one
 * per host, "-" = standard input), merged in time order; returns the count. The host column
 * appears when the lines come from more than one host.
 */
export async function traceMessage(files: string | string[], qid: string, print: (line: string) => void): Promise<number> {
  const found: Array<{ time: string; host: string; rec: Record<string, unknown> }> = [];
  const ids = new Set([qid]);
  let stdinLines: string[] | null = null;
  const linesOf = async function* (file: string): AsyncGenerator<string> {
    if (file !== '-') {
      yield* createInterface({ input: createReadStream(file), crlfDelay: Infinity });
      return;
    }
    if (!stdinLines) {
      stdinLines = [];
      for await (const l of createInterface({ input: process.stdin, crlfDelay: Infinity })) stdinLines.push(l);
    }
    yield* stdinLines;
  };
  // A bounce or relay copy has its own qid: a second pass finds lines of ids learnt late (another file).
  for (let pass = 0; pass < 2; pass++) {
    const before = ids.size;
    found.length = 0;
    for (const file of Array.isArray(files) ? files : [files]) {
      for await (const line of linesOf(file)) {
        if (!line.includes('"')) continue;
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (!(ids.has(String(rec.qid)) || ids.has(String(rec.orig_qid)))) continue;
        if (rec.orig_qid && rec.qid) ids.add(String(rec.qid));
        found.push({ time: String(rec.time ?? ''), host: String(rec.host ?? rec.hostname ?? file), rec });
      }
    }
    if (ids.size === before) break;
  }
  found.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  const hosts = new Set(found.map((f) => f.host));
  const hostWidth = Math.max(...[...hosts].map((h) => h.length));
  for (const { rec, host } of found) {
    const { time, server, event, msg, qid: q, pid: _pid, level: _level, hostname: _h, host: _host, ...rest } = rec;
    const details = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const where = hosts.size > 1 ? `${host.padEnd(hostWidth)} ` : '';
    print(`${String(time ?? '')} ${where}${String(server ?? '-').padEnd(8)} ${String(event ?? msg ?? '').padEnd(22)} ${q === qid ? '' : `qid=${String(q)} `}${details}`);
  }
  return found.length;
}
