// `fmail start [server...]` - run servers in this process until SIGTERM/SIGINT; SIGHUP reloads.

import { mkdirSync } from 'node:fs';

import type { Command } from 'commander';

import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../shared/log.js';
import type { RunningServer } from '../shared/server-module.js';
import { type ServerName, START_ORDER, isServerName, loadServer } from './servers.js';

export interface System {
  servers: RunningServer[];
  stop(): Promise<void>;
  reload(config: Config): Promise<void>;
}

/** startSystem - start the named servers (all when none) in dependency order. */
export async function startSystem(config: Config, logger: Logger, names: ServerName[] = []): Promise<System> {
  mkdirSync(config.data_dir, { recursive: true });
  const wanted = names.length ? START_ORDER.filter((n) => names.includes(n)) : START_ORDER;
  const servers: RunningServer[] = [];
  const stop = async (): Promise<void> => {
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
  return {
    servers,
    stop,
    reload: async (next) => {
      for (const s of servers) await s.reload?.(next);
    },
  };
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
      const system = await startSystem(config, logger, names as ServerName[]);
      for (const s of system.servers) {
        for (const [role, addr] of Object.entries(s.addresses)) process.stdout.write(`${s.name.padEnd(9)} ${role.padEnd(11)} ${addr}\n`);
      }
      process.stdout.write(`FancyMail running (data in ${config.data_dir}); Ctrl-C to stop\n`);
      logger.info({ event: 'system.started', servers: system.servers.map((s) => s.name) }, 'started');

      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ event: 'system.stopping', signal }, 'stopping');
        system.stop().then(
          () => {
            logger.info({ event: 'system.stopped' }, 'stopped');
            logger.flush?.();
            setTimeout(() => process.exit(0), 50).unref();
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
