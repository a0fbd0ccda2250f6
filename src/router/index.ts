// router - moves each message of the `incoming` queue to where it goes.
//
// Seed: implied by "Mail Queue Server" and "SMTP Out Server"; DESIGN.md "router".
// Answers (IPC, config.ipc.router): `alert: QUEUE` (queued's callback: something to pop), `ping`.
// Calls: queued (`subscribe`, `pop`, `done`, `defer`, `slot`, `push`), authd (`resolve`,
//   `domain`), mailboxd (`store`), smtp-out (`send`).
// Strategy: subscribed to `incoming`, and also polls every [router] poll_s. Each popped message:
//   for every recipient, authd `resolve` (an ok answer reused 100 ms) -> local users -> mailboxd `store` with a Return-Path
//   line; not a local domain -> smtp-out `send`. `done` only once every recipient is handed
//   over (at-least-once: a crash in between can deliver twice, never zero times). Temporary
//   failures -> `defer` with back-off (the remaining recipients move to a new slot when some
//   already went); permanent ones (unknown user, quota) -> DSN to the sender (src/mail/bounce.ts).
// Config: [router] concurrency, poll_s, retry_s, max_retry_s, max_age_s, postmaster, queue_colocated
//   (false: popped messages fetched with queued's `get`, new ones sent with `put` only); hostname.
// Security: reads only queue files queued hands out; recipients are checked by authd; the
//   IPC endpoint answers only `alert`, which merely triggers a pop.

import { alertHandler } from '../mail/queue-consumer.js';
import type { Config } from '../config/schema.js';
import { createIpcServer } from '../shared/ipc-setup.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { Router } from './router.js';

/** start - listen for alerts, subscribe to `incoming`, start draining it. */
export async function start(ctx: ServerContext): Promise<RunningServer> {
  const { config, logger } = ctx;
  const router = new Router(config, logger);
  const server = createIpcServer(config, 'router', logger);
  server.on('alert', alertHandler('incoming', router));
  const address = await server.listen(config.ipc.router);
  router.start(address);
  return {
    name: 'router',
    addresses: { ipc: address },
    async close() {
      await server.close(1000);
      await router.close();
    },
    reload(next: Config) {
      router.reload(next);
    },
  };
}
