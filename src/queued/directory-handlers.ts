// IPC messages of the server directory (server-directory.ts):
//   announce: HOST ; SERVER ; ADDRESSES ; VERSION ; STARTED_MS [; stopped]  -> ok
//     a running server says where it listens (ADDRESSES = ROLE=ADDRESS,...; a wildcard listen
//     host is replaced by the address the announcement came from); `stopped` removes it.
//   servers -> multi-line `server: HOST ; SERVER ; ADDRESSES ; VERSION ; UPTIME_S ; SEEN_AGO_S`

import { type IpcServer, failure, multiLine, ok } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';
import { type ServerDirectory, withPeerHost } from './server-directory.js';

const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;
const SERVER_RE = /^[a-z][a-z0-9-]{0,31}$/;

export function registerDirectory(server: IpcServer, directory: ServerDirectory, logger: Logger): void {
  server.on('announce', {
    params: [5, 6],
    handle: async (c) => {
      const [host, name, addresses, version, started, flag] = c.params as [string, string, string, string, string, string?];
      if (!HOST_RE.test(host) || !SERVER_RE.test(name)) return failure('5.5.4', 'bad HOST or SERVER');
      if (addresses.length > 1000 || version.length > 40 || !/^\d{1,15}$/.test(started)) return failure('5.5.4', 'bad ADDRESSES, VERSION or STARTED_MS');
      if (flag !== undefined && flag !== 'stopped') return failure('5.5.4', `bad announce option: ${flag.slice(0, 40)} (only "stopped")`);
      const peer = c.conn.remote === 'unix' || c.conn.remote === 'local' ? 'unix' : c.conn.remote.replace(/:\d+$/, '').replace(/^::ffff:/, '');
      try {
        if (flag === 'stopped') await directory.withdraw(host, name);
        else await directory.announce({ host, server: name, addresses: withPeerHost(addresses, peer), version, startedAt: Number(started), seenAt: Date.now() });
      } catch (err) {
        logger.warn({ event: 'queued.announce_failed', host, server: name, err: String(err) }, 'cannot record an announcement');
        return failure('4.3.0', `cannot record: ${(err as Error).message}`);
      }
      return ok();
    },
  });

  server.on('servers', {
    params: 0,
    handle: async () => {
      const now = Date.now();
      const secs = (ms: number): string => String(Math.max(0, Math.round(ms / 1000)));
      return multiLine(
        (await directory.list()).map((s) => ({ name: 'server', params: [s.host, s.server, s.addresses, s.version, secs(now - s.startedAt), secs(now - s.seenAt)] })),
      );
    },
  });
}
