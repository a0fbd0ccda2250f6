// What every server folder exports: `start(ctx)` returning a handle the CLI can stop or reload.

import type { Config } from '../config/schema.js';
import type { Logger } from './log.js';

export const SERVER_NAMES = ['authd', 'queued', 'mailboxd', 'smtp-out', 'router', 'smtpd', 'pop3d', 'imapd'] as const;
export type ServerName = (typeof SERVER_NAMES)[number];

export interface ServerContext {
  config: Config;
  /** Already bound with `server: NAME`. */
  logger: Logger;
}

export interface RunningServer {
  name: ServerName;
  /**
   * What it listens on, by role, with ports as actually bound (port 0 in config = ephemeral):
   * e.g. { ipc: "socket://127.0.0.1:14100" } or { smtp: "127.0.0.1:2525", submission: "127.0.0.1:2587" }.
   */
  addresses: Record<string, string>;
  /** Stop accepting, let work in progress finish (bounded), release everything. */
  close(): Promise<void>;
  /** Apply a re-read configuration (SIGHUP), where the server supports it. */
  reload?(config: Config): Promise<void> | void;
}

export type StartServer = (ctx: ServerContext) => Promise<RunningServer>;
