// Crash safety under SIGKILL (all-in-one): see crash-run.ts for what is sent, killed and counted.

import { describe, test } from 'node:test';

import { crashRun } from './crash-run.js';

describe('crash safety under SIGKILL', () => {
  test('all-in-one process killed and restarted at random moments', { timeout: 590_000 }, async () => {
    await crashRun('aio', 'all-in-one');
  });
});
