// Child process for crash.test.ts (not a test itself).
//   push DIR   - start queued on DIR's config and push from 16 concurrent clients forever,
//                printing `OK <path> <sha256>` after every push answered ok.
//   consume DIR QUEUE - pop one message from DIR's queued, print `POPPED <path>`, then hang (never done).

import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';

import { silentLogger } from '../../src/shared/log.js';
import { start } from '../../src/queued/index.js';
import { testClient, testConfig } from '../helpers/config.js';

const [mode, a1, a2] = process.argv.slice(2);

/** body - random bytes followed by their sha256, so a reader can tell an intact message. */
export function body(): { data: Buffer; sum: string } {
  const payload = randomBytes(200 + Math.floor(Math.random() * 8000));
  const sum = createHash('sha256').update(payload).digest('hex');
  return { data: Buffer.concat([payload, Buffer.from(sum)]), sum };
}

if (mode === 'push') {
  const cfg = testConfig(a1!);
  const q = await start({ config: cfg, logger: silentLogger() });
  process.stdout.write('READY\n');
  // Half the clients write the slot file and push it (the seed's way), half send the bytes
  // with `put` (journaled, group commit).
  const worker = async (i: number): Promise<void> => {
    const c = testClient(cfg, q.addresses.ipc!);
    for (;;) {
      const s = await c.request('slot', ['crash']);
      const { data, sum } = body();
      let r;
      if (i % 2 === 0) {
        writeFileSync(s.params[0]!, data);
        r = await c.request('push', ['crash', s.params[0]!]);
      } else {
        r = await c.store('put', ['crash', s.params[0]!, String(data.length)], data);
      }
      if (r.ok) process.stdout.write(`OK ${s.params[0]} ${sum}\n`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, (_, i) => worker(i)));
} else if (mode === 'consume') {
  const cfg = testConfig(a1!);
  const c = testClient(cfg, cfg.ipc.queued);
  const r = await c.request('pop', [a2!]);
  process.stdout.write(r.ok ? `POPPED ${r.params[0]}\n` : 'EMPTY\n');
  setInterval(() => {}, 1000);
}
