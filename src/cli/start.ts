// `fmail start [server...]` - run servers in this process until SIGTERM/SIGINT; SIGHUP reloads.

import { Worker } from 'node:worker_threads';

import type { Command } from 'commander';

import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { isLoopback, parseAddress } from '../ipc/index.js';
import { type Announcer, startAnnouncer } from '../shared/announce.js';
import { batchIoWorkers } from '../shared/io-pool.js';
import { kernelThreadId, schedBatchHelpers } from '../shared/sched-batch.js';
import { IPC_SECRET_OFF, ensureDataDir, ipcSecret, ipcSecretPath } from '../shared/ipc-secret.js';
import { createLogger, type Logger } from '../shared/log.js';
import { type MetricsJson, startMetricsServer } from '../shared/metrics-http.js';
import type { RunningServer } from '../shared/server-module.js';
import { VERSION } from '../shared/version.js';
import { type ServerName, START_ORDER, isServerName, loadServer } from './servers.js';

export interface System {
  servers: RunningServer[];
  /** Kernel thread ids of the event loops serving (this thread's, and the front-end thread's). */
  eventLoops: string[];
  metricsAddress: string | null;
  stop(): Promise<void>;
  reload(config: Config): Promise<void>;
}

export interface StartOptions {
  /** Run the front-end servers (smtpd, pop3d, imapd) in a second thread (see `threads` in the config). */
  threads?: boolean;
}

/** Servers that run in the second thread when `threads` is on: the per-connection protocol work. */
const FRONT_END: readonly ServerName[] = ['smtpd', 'pop3d', 'imapd'];

/** startSystem - start the named servers (all when none) in dependency order. */
export async function startSystem(config: Config, logger: Logger, names: ServerName[] = [], opts: StartOptions = {}): Promise<System> {
  const dir = ensureDataDir(config.data_dir);
  if (dir.tightened) logger.info({ event: 'system.data_dir_tightened', dir: config.data_dir }, 'data folder made private (0700)');
  if (dir.openTo) logger.warn({ event: 'system.data_dir_open', dir: config.data_dir, mode: dir.openTo }, 'data folder is readable by other users');
  const wanted = names.length ? START_ORDER.filter((n) => names.includes(n)) : START_ORDER;
  checkIpcExposure(config, wanted);
  // Generated here, before any server, so every server and thread of this start reads one secret.
  if (ipcSecret(config, { create: true }) === undefined) logger.warn({ event: 'system.ipc_open' }, IPC_OPEN_WARNING);
  else if (!config.ipc.secret) logger.info({ event: 'system.ipc_secret', file: ipcSecretPath(config) }, 'IPC secret in use');
  const inWorker = wanted.filter((n) => FRONT_END.includes(n));
  const useWorker = opts.threads === true && inWorker.length > 0 && inWorker.length < wanted.length;
  const servers: RunningServer[] = [];
  let worker: FrontEndWorker | null = null;
  const metrics = await startMetricsServer(config.metrics.listen, logger, async () => (worker ? [await worker.metrics()] : []));
  let announcer: Announcer | null = null;
  const stop = async (): Promise<void> => {
    await announcer?.stop();
    await metrics?.close();
    for (const s of [...servers].reverse()) {
      try {
        await s.close();
      } catch (err) {
        logger.error({ event: 'server.stop_failed', server: s.name, err: String(err) }, 'stop failed');
      }
    }
  };
  try {
    for (const name of wanted) {
      if (useWorker && inWorker.includes(name)) {
        // The second thread starts where its first server stands in the start order.
        if (!worker) {
          worker = await startFrontEndWorker(config, inWorker, logger);
          servers.push(...worker.servers);
        }
        continue;
      }
      const start = await loadServer(name);
      if (!start) {
        if (names.length) throw new Error(`server ${name} is not available in this build`);
        continue;
      }
      servers.push(await start({ config, logger: logger.child({ server: name }) }));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  announcer = startAnnouncer(config, logger, servers);
  const mine = kernelThreadId();
  return {
    servers,
    eventLoops: [mine, worker?.tid ?? null].filter((t): t is string => t !== null),
    metricsAddress: metrics?.address ?? null,
    stop,
    reload: async (next) => {
      for (const s of servers) await s.reload?.(next);
    },
  };
}

interface FrontEndWorker {
  servers: RunningServer[];
  tid: string | null;
  metrics(): Promise<MetricsJson>;
}

/** startFrontEndWorker - run some servers in a worker thread; proxies stand in for them here. */
async function startFrontEndWorker(config: Config, names: ServerName[], logger: Logger): Promise<FrontEndWorker> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { config, names } });
  // A thread that dies takes the process with it, as a crash would: the supervisor restarts it.
  worker.on('error', (err) => {
    logger.fatal({ event: 'system.thread_crashed', err: String(err) }, 'front-end thread crashed');
    logger.flush(() => process.exit(1));
  });
  const waiters = new Map<number, (data: MetricsJson) => void>();
  let nextId = 1;
  let stopped: (() => void) | null = null;
  let tid: string | null = null;
  const ready = new Promise<Array<{ name: ServerName; addresses: Record<string, string> }>>((resolve, reject) => {
    worker.on('message', (msg: { type: string; id?: number; data?: MetricsJson; servers?: Array<{ name: ServerName; addresses: Record<string, string> }>; message?: string; tid?: string | null }) => {
      if (msg.type === 'ready') {
        tid = msg.tid ?? null;
        resolve(msg.servers!);
      } else if (msg.type === 'failed') reject(new Error(msg.message));
      else if (msg.type === 'metrics') waiters.get(msg.id!)?.(msg.data!);
      else if (msg.type === 'stopped') stopped?.();
    });
  });
  const started = await ready.catch(async (err: Error) => {
    await worker.terminate();
    throw err;
  });
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      stopped = resolve;
      worker.postMessage({ type: 'stop' });
    }).then(async () => {
      await worker.terminate();
    }));
  return {
    tid,
    servers: started.map((s, i) => ({
      name: s.name,
      addresses: s.addresses,
      close,
      reload: i === 0 ? (next: Config) => worker.postMessage({ type: 'reload', config: next }) : undefined,
    })),
    metrics: () =>
      new Promise<MetricsJson>((resolve) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiters.delete(id);
          resolve([]);
        }, 2000);
        waiters.set(id, (data) => {
          clearTimeout(timer);
          waiters.delete(id);
          resolve(data);
        });
        worker.postMessage({ type: 'metrics', id });
      }),
  };
}

const IPC_LISTENERS: Partial<Record<ServerName, keyof Config['ipc']>> = {
  authd: 'authd',
  queued: 'queued',
  mailboxd: 'mailboxd',
  'smtp-out': 'smtp_out',
  router: 'router',
};

const IPC_OPEN_WARNING = 'ipc.secret = "off": any local user can talk to every server over IPC (read mailboxes, queue mail)';

/** checkIpcExposure - IPC beyond loopback only with a shared secret (DESIGN.md: never exposed unasked). */
export function checkIpcExposure(config: Config, servers: readonly ServerName[]): void {
  for (const name of servers) {
    const key = IPC_LISTENERS[name];
    if (!key) continue;
    const addr = parseAddress(config.ipc[key] as string);
    if (!isLoopback(addr) && config.ipc.secret === IPC_SECRET_OFF) {
      throw new Error(`ipc.${key} = ${config.ipc[key]} listens beyond loopback: ipc.secret = "off" is for loopback only`);
    }
  }
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run FancyMail servers (all of them in this process when none is named)')
    .argument('[servers...]', `servers to run: ${START_ORDER.join(', ')}`)
    .option('-c, --config <file>', 'configuration file (TOML); defaults apply when absent')
    .action(async (names: string[], opts: { config?: string }) => {
      for (const n of names) {
        if (!isServerName(n)) throw new Error(`unknown server "${n}"; expected one of ${START_ORDER.join(', ')}`);
      }
      let config = loadConfig(opts.config);
      const logger = createLogger(config);
      batchIoWorkers();
      const system = await startSystem(config, logger, names as ServerName[], { threads: config.threads });
      // Helper threads must not preempt the event loops when they wake (shared/sched-batch.ts).
      schedBatchHelpers(system.eventLoops);
      if (config.ipc.secret === IPC_SECRET_OFF) process.stderr.write(`warning: ${IPC_OPEN_WARNING}\n`);
      for (const s of system.servers) {
        for (const [role, addr] of Object.entries(s.addresses)) process.stdout.write(`${s.name.padEnd(9)} ${role.padEnd(11)} ${addr}\n`);
      }
      if (system.metricsAddress) process.stdout.write(`metrics   http        ${system.metricsAddress}\n`);
      const logWhere = config.log.file === '-' ? 'standard output' : config.log.file;
      process.stdout.write(`FancyMail ${VERSION} running: data in ${config.data_dir}, logs in ${logWhere}; Ctrl-C to stop\n`);
      logger.info({ event: 'system.started', servers: system.servers.map((s) => s.name) }, 'started');

      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ event: 'system.stopping', signal }, 'stopping');
        system.stop().then(
          () => {
            logger.info({ event: 'system.stopped' }, 'stopped');
            setTimeout(() => process.exit(0), 2000).unref();
            logger.flush(() => process.exit(0));
          },
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGHUP', () => {
        try {
          config = loadConfig(opts.config);
          void system.reload(config).then(() => logger.info({ event: 'system.reloaded' }, 'configuration reloaded'));
        } catch (err) {
          logger.error({ event: 'system.reload_failed', err: String((err as Error).message) }, 'reload failed; keeping the old configuration');
        }
      });
    });
}
