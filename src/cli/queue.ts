// `fmail queue ...` - the administrator's view of queued (like postqueue -p / postsuper):
// list, show, flush, requeue, delete, stats. Talks to the running queued over IPC with the
// admin messages documented in src/queued/index.ts.

import type { Command } from 'commander';

import { loadConfig } from '../config/load.js';
import { IpcClient } from '../ipc/index.js';
import { ipcSecret } from '../shared/ipc-secret.js';

type Opts = { config?: string };

async function withQueued<T>(opts: Opts, fn: (c: IpcClient) => Promise<T>): Promise<T> {
  const cfg = loadConfig(opts.config);
  const c = new IpcClient(cfg.ipc.queued, { timeoutMs: 30_000, connectTimeoutMs: 3000, secret: ipcSecret(cfg) });
  try {
    return await fn(c);
  } catch (err) {
    throw new Error(`queued at ${cfg.ipc.queued}: ${(err as Error).message}`);
  } finally {
    c.close();
  }
}

function failed(msg: string | undefined): void {
  process.stderr.write(`fmail queue: ${msg ?? 'error'}\n`);
  process.exitCode = 1;
}

function age(s: string): string {
  const n = Number(s);
  if (s === '' || !Number.isFinite(n)) return '?';
  if (n < 120) return `${n}s`;
  if (n < 7200) return `${Math.floor(n / 60)}m`;
  if (n < 172800) return `${Math.floor(n / 3600)}h`;
  return `${Math.floor(n / 86400)}d`;
}

export function register(program: Command): void {
  const queue = program.command('queue').description('inspect and manage the mail queues (queued must be running)');
  const cfgOpt = ['-c, --config <file>', 'configuration file (TOML)'] as const;

  queue
    .command('list')
    .description('messages with id, queue, age, size, state, next attempt and last error')
    .argument('[queue]', 'only this queue')
    .option(...cfgOpt)
    .action(async (name: string | undefined, opts: Opts) => {
      await withQueued(opts, async (c) => {
        const res = await c.requestList('qlist', name === undefined ? [] : [name]);
        if (!res.reply.ok) return failed(res.reply.params[0]);
        const out = [`${'ID'.padEnd(16)}${'QUEUE'.padEnd(12)}${'STATE'.padEnd(10)}${'AGE'.padStart(6)} ${'SIZE'.padStart(9)}  ${'NEXT ATTEMPT'.padEnd(25)}TRIES  LAST ERROR`];
        for (const { params } of res.items) {
          const [qid = '', q = '', state = '', ageS = '', size = '', next = '', attempts = '0', reason = ''] = params;
          out.push(`${qid.padEnd(16)}${q.padEnd(12)}${state.padEnd(10)}${age(ageS).padStart(6)} ${size.padStart(9)}  ${(next || '-').padEnd(25)}${attempts.padStart(5)}  ${reason}`);
        }
        out.push(`-- ${res.items.length} message${res.items.length === 1 ? '' : 's'}`);
        process.stdout.write(out.join('\n') + '\n');
      });
    });

  queue
    .command('show')
    .description('print a queued message file (envelope and message)')
    .argument('<id>', 'queue id')
    .option(...cfgOpt)
    .action(async (id: string, opts: Opts) => {
      await withQueued(opts, async (c) => {
        const res = await c.requestStream('qshow', [id]);
        if (!res.stream) return failed(res.reply.params[0]);
        for await (const chunk of res.stream) process.stdout.write(chunk as Buffer);
      });
    });

  queue
    .command('flush')
    .description('make every deferred message ready now')
    .argument('[queue]', 'only this queue')
    .option(...cfgOpt)
    .action(async (name: string | undefined, opts: Opts) => {
      await withQueued(opts, async (c) => {
        const r = await c.request('qflush', name === undefined ? [] : [name]);
        if (!r.ok) return failed(r.params[0]);
        process.stdout.write(`${r.params[0]} deferred message(s) made ready\n`);
      });
    });

  for (const [verb, msg, what] of [
    ['requeue', 'qrequeue', 'make a deferred or leased message ready now'],
    ['delete', 'qdelete', 'remove a message from its queue for good'],
  ] as const) {
    queue
      .command(verb)
      .description(what)
      .argument('<id>', 'queue id')
      .option(...cfgOpt)
      .action(async (id: string, opts: Opts) => {
        await withQueued(opts, async (c) => {
          const r = await c.request(msg, [id]);
          if (!r.ok) return failed(r.params[0]);
          process.stdout.write(`${id}: ${verb === 'delete' ? 'deleted' : 'requeued'}\n`);
        });
      });
  }

  queue
    .command('stats')
    .description('message counts per queue and state')
    .option(...cfgOpt)
    .action(async (opts: Opts) => {
      await withQueued(opts, async (c) => {
        const res = await c.requestList('qstats');
        if (!res.reply.ok) return failed(res.reply.params[0]);
        const out = [`${'QUEUE'.padEnd(16)}${'READY'.padStart(9)}${'LEASED'.padStart(9)}${'DEFERRED'.padStart(10)}${'SLOTS'.padStart(8)}`];
        for (const { params } of res.items) {
          const v = (k: string): string => params.find((p) => p.startsWith(`${k}=`))?.slice(k.length + 1) ?? '0';
          out.push(`${(params[0] ?? '').padEnd(16)}${v('ready').padStart(9)}${v('leased').padStart(9)}${v('deferred').padStart(10)}${v('slots').padStart(8)}`);
        }
        process.stdout.write(out.join('\n') + '\n');
      });
    });
}
