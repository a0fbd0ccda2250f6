// Structured logs: one JSON line per event (pino). Every line carries `server` and, for mail,
// the queue id as `qid`, so `fmail trace QID` can follow a message through every server.

import { pino, type Logger } from 'pino';

import type { Config } from '../config/schema.js';
import { LogFile } from './log-file.js';

export type { Logger };

/** createLogger - the root logger from the [log] settings. */
export function createLogger(cfg: Pick<Config, 'log' | 'hostname'>): Logger {
  const level = cfg.log.level;
  if (level === 'silent') return pino({ level });
  const toStdout = cfg.log.file === '-' || cfg.log.file === '';
  // Lines are gathered into writes of about 4 KiB rather than one write(2) each; what is still
  // buffered is flushed on a clean stop (a crash may lose the last few lines, never mail).
  const dest = new LogFile(toStdout ? 1 : cfg.log.file);
  // A quiet server must not sit on its last lines: flush what is buffered every second.
  setInterval(() => dest.flush(), 1000).unref();
  // `host` tells lines apart when `fmail trace` merges several hosts' logs.
  return pino({ level, base: { pid: process.pid, host: cfg.hostname }, timestamp: isoTime }, dest);
}

// isoTime - pino's ISO timestamp, made once per millisecond (a busy server logs several lines
// in each).
let lastMs = -1;
let lastTime = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/** silentLogger - for tests and one-shot commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
