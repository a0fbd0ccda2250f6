// External tools (swaks, postfix, dovecot, mpop, python3): a test that needs one skips locally
// when it is missing, but fails under CI, where .ci/run installs them all.

import { spawnSync } from 'node:child_process';

export function hasTool(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** toolSkip - pass as `{ skip: toolSkip('swaks') }`; under CI a missing tool is an error. */
export function toolSkip(...cmds: string[]): string | false {
  const missing = cmds.filter((c) => !hasTool(c));
  if (missing.length === 0) return false;
  if (process.env.CI) throw new Error(`CI is missing required tools: ${missing.join(', ')}`);
  return `missing ${missing.join(', ')}`;
}
