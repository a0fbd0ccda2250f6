#!/usr/bin/env node
// fmail launcher. CommonJS on purpose (bin/package.json): it runs before anything touches libuv's thread pool, so
// the pool size can still be raised (the queue's and Maildir's fsyncs run there in parallel;
// Node's default of 4 would cap group commit). The compiled CLI lives in dist/, built by
// `npm install` through the `prepare` script.
'use strict';
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || '16';
import('../dist/src/cli/main.js').catch((err) => {
  process.stderr.write(`fmail: ${err && err.message ? err.message : err}\n`);
  process.exitCode = 1;
});
