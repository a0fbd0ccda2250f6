// Configuration loading: TOML file -> validated Config with absolute paths.

import { readFileSync } from 'node:fs';
import path from 'node:path';

import { parse as parseToml } from 'smol-toml';
import type { z } from 'zod';

import { type Config, ConfigSchema } from './schema.js';

export class ConfigError extends Error {}

/** loadConfig - read FILE (or use defaults when none is given), validate, resolve paths. */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    try {
      raw = parseToml(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`${file}: not valid TOML: ${(err as Error).message}`);
    }
  }
  if (raw.data_dir === undefined && env.FMAIL_DATA) raw.data_dir = env.FMAIL_DATA;
  if (env.FMAIL_IPC_SECRET) {
    const ipc = (raw.ipc ?? {}) as Record<string, unknown>;
    if (ipc.secret === undefined && typeof ipc === 'object') raw.ipc = { ...ipc, secret: env.FMAIL_IPC_SECRET };
  }
  return parseConfig(raw, file ? path.dirname(path.resolve(file)) : process.cwd(), file ?? 'config');
}

/** parseConfig - validate a plain object; relative data_dir is taken from `baseDir`. */
export function parseConfig(raw: unknown, baseDir = process.cwd(), label = 'config'): Config {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error, label));
  const cfg = result.data;
  cfg.data_dir = path.resolve(baseDir, cfg.data_dir);
  if (cfg.log.file !== '-') cfg.log.file = path.resolve(cfg.data_dir, cfg.log.file);
  return cfg;
}

/** dataPath - a path setting resolved under data_dir unless absolute. */
export function dataPath(cfg: Config, p: string): string {
  return path.resolve(cfg.data_dir, p);
}

function formatIssues(err: z.ZodError, label: string): string {
  return err.issues
    .map((issue) => {
      const key = issue.path.join('.') || '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.length ? `[${issue.path.join('.')}] ` : '';
        return `${label}: unknown key ${where}${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      }
      return `${label}: ${key}: ${issue.message}`;
    })
    .join('\n');
}
