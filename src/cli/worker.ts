// The second thread of `fmail start`: runs the front-end servers (smtpd, pop3d) so the
// all-in-one process uses two cores. It shares nothing with the main thread but the
// configuration; the servers talk to the others over IPC exactly as in separate processes.
//
// Messages from the main thread: {type:'stop'}, {type:'reload', config}, {type:'metrics', id}.
// To it: {type:'ready', servers, tid}, {type:'failed', message}, {type:'stopped'}, {type:'metrics', id, data}.

import { parentPort, workerData } from 'node:worker_threads';

import type { Config } from '../config/schema.js';
import { batchIoWorkers } from '../shared/io-pool.js';
import { createLogger } from '../shared/log.js';
import { registry } from '../shared/metrics.js';
import { kernelThreadId } from '../shared/sched-batch.js';
import type { RunningServer, ServerName } from '../shared/server-module.js';
import { loadServer } from './servers.js';

const { config, names } = workerData as { config: Config; names: ServerName[] };
const port = parentPort!;
// Only fmail start runs this thread: its I/O workers run under SCHED_BATCH (shared/sched-batch.ts).
batchIoWorkers();
const logger = createLogger(config);
const servers: RunningServer[] = [];

async function main(): Promise<void> {
  try {
    for (const name of names) {
      const start = await loadServer(name);
      if (!start) throw new Error(`server ${name} is not available in this build`);
      servers.push(await start({ config, logger: logger.child({ server: name }) }));
    }
  } catch (err) {
    for (const s of servers.reverse()) await s.close().catch(() => {});
    port.postMessage({ type: 'failed', message: (err as Error).message });
    return;
  }
  port.postMessage({ type: 'ready', servers: servers.map((s) => ({ name: s.name, addresses: s.addresses })), tid: kernelThreadId() });
}

port.on('message', (msg: { type: string; id?: number; config?: Config }) => {
  if (msg.type === 'stop') {
    void (async () => {
      for (const s of [...servers].reverse()) {
        await s.close().catch((err: unknown) => logger.error({ event: 'server.stop_failed', server: s.name, err: String(err) }, 'stop failed'));
      }
      logger.flush(() => port.postMessage({ type: 'stopped' }));
    })();
  } else if (msg.type === 'reload' && msg.config) {
    for (const s of servers) void s.reload?.(msg.config);
  } else if (msg.type === 'metrics') {
    void registry.getMetricsAsJSON().then((data) => port.postMessage({ type: 'metrics', id: msg.id, data }));
  }
});

void main();
