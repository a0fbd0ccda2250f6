// smtp-out - the SMTP Out Server: delivers mail for remote recipients.
//
// Seed: "SMTP Out Server" (`send`); DESIGN.md "smtp-out".
// Answers (IPC, config.ipc.smtp_out): `send: FROM ; TO ; SLOT` -> `ok` once a copy for TO is
//   durably in queued's `outgoing` queue (responsibility taken, not yet delivered); the sends
//   of one message that arrive together share one copy per destination (accept.ts); errors
//   carry a status code (`error: 5.1.3 bad recipient ...`, `error: 4.3.1 cannot queue ...`);
//   `alert: outgoing` (queued's callback); `ping`.
// Calls: queued (`slot`, `push`, `subscribe`, `pop`, `renew`, `done`, `defer`), authd (`domain`, to find
//   postmaster for double bounces), remote SMTP servers (nodemailer's SMTP client).
// Strategy: see outbound.ts (destinations, jobs in hand, dead-destination cache, slow start,
//   round robin, rate delay, connection cache, back-off, bounces) and
//   nexthop.ts (routes, relay host, MX with null-MX and A/AAAA fallback).
// Config: [smtp_out] queue_colocated (false: messages fetched with queued's `get`, written with
//   `put` only; see mail/queue-copy.ts), routes, relay_host, relay_user, relay_password, relay_tls_verify,
//   relay_ca_file, port, first_retry_s,
//   max_backoff_s, max_age_s, poll_s, concurrency, destination_concurrency,
//   destination_jobs_limit, destination_rate_delay, dead_destination_s, max_sessions,
//   connection_cache_s, connect_timeout_s, command_timeout_s; hostname (EHLO, bounces).
// Mail auth: copies of mail from authenticated sessions and of bounces are DKIM-signed on the
//   way into `outgoing` (outgoing-head.ts; keys in [dkim] keys_dir, `fmail dkim`); MX
//   destinations follow the domain's MTA-STS policy (mta-sts-plan.ts, [mta_sts]); every DNS
//   lookup goes through [dns]. Logs smtp-out.dkim_signed, smtp-out.mta_sts.
// Security: `send` reads only files inside the queued spool; STARTTLS is used whenever
//   offered (certificates not verified: opportunistic, like Postfix's default `may`);
//   AUTH credentials go only to the relay host and only over TLS: with relay_user set, TLS is
//   required and verified (system CAs or relay_ca_file; relay_tls_verify = false accepts any
//   certificate), a relay without it is deferred and never sees the password (relay-tls.ts).

import path from 'node:path';

import { DkimSigner } from '../mail/auth/dkim-sign.js';
import { alertHandler } from '../mail/queue-consumer.js';
import { QueueFiles } from '../mail/queue-copy.js';
import { dataPath } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createIpcServer } from '../shared/ipc-setup.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { Acceptor } from './accept.js';
import { Outbound } from './outbound.js';
import { outgoingHead } from './outgoing-head.js';

/** start - answer `send`, and deliver what is in `outgoing`. */
export async function start(ctx: ServerContext): Promise<RunningServer> {
  const { config, logger } = ctx;
  const outbound = new Outbound(config, logger);
  const signer = config.dkim.sign ? new DkimSigner(dataPath(config, config.dkim.keys_dir)) : null;
  const acceptor = new Acceptor({
    queued: outbound.queued,
    // Co-located: the spool folder is the one this host's queued uses (the seed's layout).
    spoolDir: config.smtp_out.queue_colocated ? path.resolve(dataPath(config, config.queued.spool)) : null,
    files: new QueueFiles(outbound.queued, config.smtp_out.queue_colocated ? null : dataPath(config, 'smtp-out/send-copies')),
    logger,
    destination: (domain) => outbound.destinationOf(domain),
    head: (src, file, offset) => outgoingHead(signer, logger, src, file, offset),
  });
  const server = createIpcServer(config, 'smtp-out', logger);
  server.on('send', { params: 3, handle: (c) => acceptor.send(c.params[0]!, c.params[1]!, c.params[2]!) });
  server.on('alert', alertHandler('outgoing', outbound));
  const address = await server.listen(config.ipc.smtp_out);
  outbound.start(address);
  return {
    name: 'smtp-out',
    addresses: { ipc: address },
    async close() {
      await server.close(1000);
      await outbound.close();
    },
    reload(next: Config) {
      outbound.reload(next);
    },
  };
}
