// files - where the user database lives and how new hashes are made, from the configuration
// (shared by the server and `fmail user`).

import { readFileSync } from 'node:fs';

import { dataPath } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Argon2Params } from './password.js';

/** argon2Params - the [authd] hash cost as @node-rs/argon2 options. */
export function argon2Params(config: Config): Argon2Params {
  const a = config.authd;
  return { memoryKib: a.argon2_memory_kib, timeCost: a.argon2_time_cost, parallelism: a.argon2_parallelism };
}

/** usersFiles - the users and aliases files of a configuration. */
export function usersFiles(config: Config): { usersFile: string; aliasesFile: string } {
  return { usersFile: dataPath(config, config.authd.users_file), aliasesFile: dataPath(config, config.authd.aliases_file) };
}

/** readText - a file's text; a missing file is empty (no users yet), other errors throw. */
export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}
