// How servers create their IPC endpoints and clients from the configuration, so secret,
// timeouts and limits are applied the same way everywhere.

import { IpcClient, IpcServer } from '../ipc/index.js';
import type { Config } from '../config/schema.js';
import type { Logger } from './log.js';
import { ipcLatency } from './metrics.js';
import { VERSION } from './version.js';

export type IpcPeer = 'authd' | 'queued' | 'smtp_out' | 'mailboxd' | 'router';

/** createIpcServer - an IpcServer for SERVER-NAME with the [ipc] limits and secret. */
export function createIpcServer(config: Config, serverName: string, logger: Logger): IpcServer {
  return new IpcServer({
    serverName,
    version: VERSION,
    logger,
    idleTimeoutMs: config.ipc.idle_timeout_s * 1000,
    maxConnections: config.ipc.max_connections,
    secret: config.ipc.secret || undefined,
    onRequest: (message, seconds) => ipcLatency.observe({ server: serverName, message }, seconds),
  });
}

/** ipcClient - a persistent client to one of the configured servers. */
export function ipcClient(config: Config, peer: IpcPeer, timeoutMs = config.ipc.timeout_ms): IpcClient {
  return new IpcClient(config.ipc[peer], { timeoutMs, secret: config.ipc.secret || undefined });
}
