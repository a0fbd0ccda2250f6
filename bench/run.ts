// npm run bench - runs every bench/*.bench.ts (compiled) one after another; each prints figures.
// `npm run bench -- ipc queued` runs only those whose file name contains a filter.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
let failed = 0;
for (const f of files) {
  process.stdout.write(`\n=== ${f.replace(/\.bench\.js$/, '')} ===\n`);
  const res = spawnSync(process.execPath, [path.join(here, f)], { stdio: 'inherit' });
  if (res.status !== 0) failed++;
}
if (failed) process.stdout.write(`\n${failed} benchmark(s) did not complete\n`);
