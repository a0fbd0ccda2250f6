// Child process for postgres.test.ts (not a test itself): `pop DIR URL QUEUE` starts a queued on
// PostgreSQL (data DIR, database URL, lease_s 1), pops one message of QUEUE through it, prints
// `POPPED <path>`, then hangs holding the lease until the test SIGKILLs it.

import { silentLogger } from '../../src/shared/log.js';
import { start } from '../../src/queued/index.js';
import { testClient, testConfig } from '../helpers/config.js';

const [mode, dir, url, queue] = process.argv.slice(2);

if (mode === 'pop') {
  const cfg = testConfig(dir!, { queued: { backend: 'postgres', postgres_url: url!, lease_s: 1 } });
  const q = await start({ config: cfg, logger: silentLogger() });
  const c = testClient(cfg, q.addresses.ipc!);
  const r = await c.request('pop', [queue!]);
  process.stdout.write(r.ok ? `POPPED ${r.params[0]}\n` : 'EMPTY\n');
  // Keep renewing, as a live consumer does: only the kill ends the lease.
  setInterval(() => void c.request('renew', [queue!, r.params[0]!]).catch(() => undefined), 300);
}
