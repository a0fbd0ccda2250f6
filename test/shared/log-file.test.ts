// LogFile: every line, in order, once flushed; flushSync writes what is buffered at once.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';

import { LogFile } from '../../src/shared/log-file.js';
import { tempDir } from '../helpers/tmp.js';

const t = tempDir('fmail-log-file-');
after(() => t.cleanup());

test('lines arrive whole and in order, across many writes; flush calls back once written', async () => {
  const file = path.join(t.dir, 'sub', 'fmail.log');
  const log = new LogFile(file);
  const lines = Array.from({ length: 5000 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(i % 300)}","u":"é"}\n`);
  for (const l of lines) log.write(l);
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  assert.equal(readFileSync(file, 'utf8'), lines.join(''));
  log.write('{"last":true}\n');
  log.flushSync();
  assert.ok(readFileSync(file, 'utf8').endsWith('{"last":true}\n'));
  log.end();
});
