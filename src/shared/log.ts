// Structured logs: one JSON line per event (pino). Every line carries `server` and, for mail,
// the queue id as `qid`, so `fmail trace QID` can follow a message through every server.

import { pino, type Logger } from 'pino';

import type { Config } from '../config/schema.js';

export type { Logger };

/** createLogger - the root logger from the [log] settings. */
export function createLogger(cfg: Pick<Config, 'log'>): Logger {
  const level = cfg.log.level;
  if (level === 'silent') return pino({ level });
  const toStdout = cfg.log.file === '-' || cfg.log.file === '';
  const dest = toStdout ? pino.destination({ dest: 1, sync: false }) : pino.destination({ dest: cfg.log.file, mkdir: true, sync: false });
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** silentLogger - for tests and one-shot commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
