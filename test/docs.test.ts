// The README documents every configuration key: its reference is generated from the schema
// (node scripts/config-reference.js) and must not drift from it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { configReference, settings } from '../src/config/describe.js';
import { ROOT } from './helpers/fmail-process.js';

test('README configuration reference matches the schema', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = readme.split('<!-- config-reference:start -->')[1]?.split('<!-- config-reference:end -->')[0] ?? '';
  assert.equal(block.trim(), configReference().trim(), 'run: npm run build && node scripts/config-reference.js');
});

test('every setting has a description', () => {
  const missing = settings().filter((s) => !s.description).map((s) => `${s.section}.${s.key}`);
  assert.deepEqual(missing, []);
});
