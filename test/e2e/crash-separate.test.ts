// Crash safety under SIGKILL (separate): see crash-run.ts for what is sent, killed and counted.

import { describe, test } from 'node:test';

import { crashRun } from './crash-run.js';

describe('crash safety under SIGKILL', () => {
  test('each server in its own process, one killed at a time', { timeout: 590_000 }, async () => {
    await crashRun('sep', 'separate');
  });
});
