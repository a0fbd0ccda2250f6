// Announcer: every `fmail start` process tells queued which servers it runs and where they
// listen (`announce`), at start and every [ipc] announce_s, and withdraws them on a clean stop,
// so `fmail status` on any host lists every host's servers (queued/server-directory.ts).
// Best effort: an unreachable queued delays nothing and is retried; mail never waits on it.

import type { Config } from '../config/schema.js';
import { IpcClient } from '../ipc/index.js';
import { ipcSecret } from './ipc-secret.js';
import type { Logger } from './log.js';
import type { RunningServer } from './server-module.js';
import { VERSION } from './version.js';

export interface Announcer {
  /** stop - withdraw the servers (bounded: a second at most) and close. */
  stop(): Promise<void>;
}

/** announceAddresses - a server's listen addresses as ROLE=ADDRESS,... */
export function announceAddresses(s: Pick<RunningServer, 'addresses'>): string {
  return Object.entries(s.addresses)
    .map(([role, addr]) => `${role}=${addr}`)
    .join(',');
}

export function startAnnouncer(config: Config, logger: Logger, servers: RunningServer[]): Announcer {
  const periodMs = config.ipc.announce_s * 1000;
  if (periodMs <= 0 || servers.length === 0) return { stop: async () => {} };
  const client = new IpcClient(config.ipc.queued, { timeoutMs: 5000, connectTimeoutMs: 3000, secret: ipcSecret(config) });
  const started = String(Date.now());
  const host = config.hostname;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let failures = 0;

  const announceAll = async (): Promise<void> => {
    timer = null;
    try {
      for (const s of servers) {
        const r = await client.request('announce', [host, s.name, announceAddresses(s), VERSION, started]);
        if (!r.ok) throw new Error(r.params.join(' '));
      }
      if (failures > 0) logger.info({ event: 'system.announced', servers: servers.map((s) => s.name) }, 'servers announced to queued');
      failures = 0;
    } catch (err) {
      if (failures++ === 0) logger.debug({ event: 'system.announce_failed', err: String((err as Error).message) }, 'cannot announce to queued yet');
    }
    if (stopped) return;
    // Soon after a failure (queued may start after us), then every announce_s.
    const next = failures ? Math.min(periodMs, 1000 * 2 ** Math.min(failures, 5)) : periodMs;
    timer = setTimeout(() => void announceAll(), next);
    timer.unref();
  };
  void announceAll();

  return {
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      const withdraw = Promise.all(servers.map((s) => client.request('announce', [host, s.name, '', VERSION, started, 'stopped']).catch(() => undefined)));
      await Promise.race([withdraw, new Promise((r) => setTimeout(r, 1000).unref())]);
      client.close();
    },
  };
}
