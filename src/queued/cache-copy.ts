// The cache copy pop hands out (DATA/queue/NAME/cache/QID) for a message whose truth is
// elsewhere (the journal, or a PostgreSQL row), rewritten from those bytes.

import path from 'node:path';

import { runIo } from '../shared/io-pool.js';

/** Unique names for copies being written. */
let asideSeq = 0;

/**
 * rewriteCopy - FILE now holds DATA: written aside in the same folder and renamed over, not
 * rewritten in place, so a consumer still reading the copy of an earlier lease (from a queued
 * that died, or another instance) never sees it truncated. No fsync: it is a copy, and a
 * restart rewrites it again. The aside name starts with a dot, which recovery sweeps.
 */
export async function rewriteCopy(file: string, data: Uint8Array): Promise<void> {
  const aside = path.join(path.dirname(file), `.${path.basename(file)}.${++asideSeq}`);
  await runIo({ op: 'write', path: aside, data: [data], close: true, renameTo: file });
}
