// queued - the Mail Queue Server (seed: "Mail Queue Server"; DESIGN.md "queued").
//
// Named queues of files in the spool (DATA/queue/NAME/, created on first use). A client asks
// for a slot, writes the file, pushes it; a consumer pops the oldest ready message and holds a
// lease on it until `done` (removed) or `defer` (back after SECONDS). Layout, recovery and
// the group commit are described in queue.ts and shared/durable.ts. With [queued] backend =
// "postgres" the messages live in PostgreSQL instead (pg-backend.ts; several instances share
// one database; slots and the files pop hands out stay in the local spool). Both sit behind
// backend.ts's QueueBackend; this file keeps the IPC checks.
//
// IPC messages answered:
//   slot: QUEUE                         -> ok: PATH (DATA/queue/QUEUE/tmp/QID)
//   push: QUEUE ; PATH [; synced]       -> ok once file and folder are fsynced (group commit);
//                                          `synced`: the writer fdatasynced the file, not redone
//   put: QUEUE ; PATH ; LENGTH          -> ok (go ahead), LENGTH raw bytes, ok once journaled:
//                                          the bytes of slot PATH sent instead of written
//                                          (journal with group commit; pop hands out a file)
//   pop: QUEUE                          -> ok: PATH (DATA/queue/QUEUE/msg/QID), leased; or `error`
//   take: QUEUE [; MAX]                 -> pop with the bytes: ok: SIZE ; PATH + SIZE raw bytes;
//                                          bigger than MAX (1 MiB): ok: 0 ; PATH ; file (read PATH)
//   copy: QUEUE ; PATH                  -> ok once the leased message PATH (from `take`) is a file
//                                          there, for a reader of the path form (smtp-out's `send`)
//   done: QUEUE ; PATH                  -> ok; the file is removed (leased paths only)
//   defer: QUEUE ; PATH ; SECONDS [; REASON] -> ok; ready again after SECONDS (persisted)
//   get: QUEUE ; PATH-or-QID            -> ok: SIZE + SIZE raw bytes (the `retr` style): a queued
//                                          message's bytes, for a consumer without our disk
//   renew: QUEUE ; PATH [; SECONDS]     -> ok: LEFT; the popper's lease now ends SECONDS (default
//                                          lease_s) from now, never earlier (in memory only)
//   subscribe: QUEUE ; CALLBACK         -> ok; CALLBACK (socket:// or unix://) gets `alert: QUEUE`
//   unsubscribe / unsuscribe: QUEUE ; CALLBACK -> ok, or error when not subscribed
//   admin (fmail queue): qstats (multi-line `queue: NAME ; ready=N ; leased=N ; deferred=N ;
//     slots=N`), qlist: [QUEUE] (multi-line `msg: QID ; QUEUE ; STATE ; AGE_S ; SIZE ;
//     NEXT_ATTEMPT ; ATTEMPTS ; LAST_ERROR`), qshow: QID (raw file), qflush: [QUEUE] (ok: COUNT),
//     qrequeue: QID, qdelete: QID
//   directory (fmail status): announce: HOST ; SERVER ; ADDRESSES ; VERSION ; STARTED_MS [; stopped]
//     -> ok; servers -> multi-line `server: HOST ; SERVER ; ADDRESSES ; VERSION ; UPTIME_S ;
//     SEEN_AGO_S` (directory-handlers.ts; shared by every instance on PostgreSQL)
// Servers called: none; only subscribers' callbacks (`alert`).
// Config [queued]: backend, postgres_url, spool, lease_s, slot_grace_s, alert_backoff_s, alert_max_failures, list_limit.
// Alerts: when a queue goes from empty to non-empty, and on the next new mail after a `pop`
// answered `error` (deferred messages coming due and expired leases count as new mail).
// Security: every QUEUE is checked against [a-z0-9][a-z0-9_-]*; every PATH must be exactly one
// this server handed out (slot for push, leased message for done/defer), so `..`, other folders
// and symlinks are refused with `error` and nothing changes. Callbacks are whatever a trusted IPC
// peer subscribes (IPC itself is loopback or secret-protected).

import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { type RequestContext, error, failure, ok, rawData } from '../ipc/index.js';
import { dataPath } from '../config/load.js';
import { ipcSecret } from '../shared/ipc-secret.js';
import { createIpcServer } from '../shared/ipc-setup.js';
import type { RunningServer, ServerContext } from '../shared/server-module.js';
import { registerAdmin } from './admin.js';
import { registerDirectory } from './directory-handlers.js';
import { Alerter } from './alerts.js';
import { isQueueName } from './names.js';
import { type QueueBackend, QueueError } from './backend.js';
import { FileBackend } from './file-backend.js';
import { PgBackend } from './pg-backend.js';
import type { QueueOptions } from './queue.js';
import { readFileOnce } from '../shared/durable.js';
import { warmIo } from '../shared/io-pool.js';

const MAX_DEFER_S = 10 * 365 * 86400;
/** Longest lease a `renew` may ask for: a day (a holder that dies is noticed by its connection). */
const MAX_LEASE_S = 86400;
/** Largest `put`: messages are held in memory while they arrive (bigger ones: slot + push). */
const MAX_PUT_BYTES = 64 * 1024 * 1024;

/** `take` hands out the bytes of messages up to this size unless asked otherwise (bigger: the path). */
const DEFAULT_TAKE_BYTES = 1024 * 1024;

/** Per IPC connection: the paths it popped and has not finished (see Queue.abandon). */
const HELD = 'queued.held';

export async function start(ctx: ServerContext): Promise<RunningServer> {
  warmIo();
  const { config, logger } = ctx;
  const qc = config.queued;
  const spoolDir = dataPath(config, qc.spool);
  await fsp.mkdir(spoolDir, { recursive: true });

  const alerter = new Alerter({
    file: path.join(spoolDir, 'subscriptions.json'),
    backoffMs: qc.alert_backoff_s * 1000,
    maxFailures: qc.alert_max_failures,
    secret: ipcSecret(config, { create: true }),
    logger,
  });
  const opts: QueueOptions = {
    leaseMs: qc.lease_s * 1000,
    slotGraceMs: qc.slot_grace_s * 1000,
    logger,
    onNewMail: (q) => {
      logger.debug({ event: 'queued.new_mail', queue: q.name }, 'alerting subscribers');
      alerter.alert(q.name);
    },
  };
  const t0 = Date.now();
  const backend: QueueBackend = qc.backend === 'postgres' ? await PgBackend.open(spoolDir, qc.postgres_url, opts) : await FileBackend.open(spoolDir, opts);
  logger.info({ event: 'queued.started', backend: qc.backend, queues: (await backend.stats()).length, ms: Date.now() - t0 }, 'queue recovered');

  const server = createIpcServer(config, 'queued', logger);
  const badName = (name: string) => failure('5.5.4', `bad queue name: ${name.slice(0, 100)}`);
  const fail = (err: unknown) => {
    if (err instanceof QueueError) return failure(err.status, err.message);
    throw err;
  };

  server.on('slot', {
    params: 1,
    handle: async (c) => {
      const name = c.params[0]!;
      if (!isQueueName(name)) return badName(name);
      return ok(await backend.slot(name));
    },
  });

  server.on('push', {
    params: [2, 3],
    handle: async (c) => {
      const [name, p, flag] = c.params as [string, string, string?];
      if (!isQueueName(name)) return badName(name);
      if (flag !== undefined && flag !== 'synced') return error(`bad push option: ${flag.slice(0, 40)} (only "synced")`);
      try {
        const qid = await backend.push(name, p, flag === 'synced');
        logger.info({ event: 'queued.push', qid, queue: name }, 'message queued');
        return ok();
      } catch (err) {
        return fail(err);
      }
    },
  });

  server.on('put', {
    params: 3,
    rawInput: true,
    nowLength: (p) => (/^\d{1,10}$/.test(p[2]!) ? Number(p[2]) : null),
    handle: async (c) => {
      const [name, p, lengthText] = c.params as [string, string, string];
      if (!isQueueName(name)) return badName(name);
      if (!/^\d{1,10}$/.test(lengthText) || Number(lengthText) > MAX_PUT_BYTES) return failure('5.5.4', `bad LENGTH: ${lengthText.slice(0, 20)} (at most ${MAX_PUT_BYTES})`);
      if (!backend.isSlot(name, p)) return failure('5.5.4', `not an open slot of queue ${name}: ${p}`);
      c.send('ok');
      const chunks: Buffer[] = [];
      for await (const chunk of c.receiveRaw(Number(lengthText))) chunks.push(chunk as Buffer);
      try {
        const qid = await backend.put(name, p, chunks);
        // Same event as a push: the message entered the queue (fmail trace and log readers look for it).
        logger.info({ event: 'queued.push', qid, queue: name, via: 'put', size: Number(lengthText) }, 'message queued');
        return ok();
      } catch (err) {
        return fail(err);
      }
    },
  });

  // hold - remember that C's connection leases P: a consumer that dies holding leases gives
  // them back at once, not after lease_s.
  const hold = (c: RequestContext, p: string, name: string): void => {
    let held = c.conn.data.get(HELD) as Map<string, string> | undefined;
    if (!held) {
      const mine = new Map<string, string>();
      held = mine;
      c.conn.data.set(HELD, mine);
      c.conn.onClose(() => {
        for (const [leasedPath, queue] of mine) backend.abandon(queue, leasedPath, c.conn.id);
      });
    }
    held.set(p, name);
  };

  server.on('pop', {
    params: 1,
    handle: async (c) => {
      const name = c.params[0]!;
      if (!isQueueName(name)) return badName(name);
      let p: string | null;
      try {
        p = await backend.pop(name, c.conn.id);
      } catch (err) {
        logger.error({ event: 'queued.pop_failed', queue: name, err: String(err) }, 'cannot hand out a message');
        return fail(err);
      }
      if (p === null) return error();
      hold(c, p, name);
      logger.debug({ event: 'queued.pop', qid: path.basename(p), queue: name }, 'message leased');
      return ok(p);
    },
  });

  server.on('take', {
    params: [1, 2],
    handle: async (c) => {
      const [name, maxText] = c.params as [string, string?];
      if (!isQueueName(name)) return badName(name);
      if (maxText !== undefined && !/^\d{1,9}$/.test(maxText)) return failure('5.5.4', `bad MAX: ${maxText.slice(0, 20)}`);
      const max = Math.min(maxText === undefined ? DEFAULT_TAKE_BYTES : Number(maxText), MAX_PUT_BYTES);
      let taken: { path: string; data: Buffer | null } | null;
      try {
        taken = backend.take ? await backend.take(name, c.conn.id, max) : await popAndRead(name, c.conn.id, max);
      } catch (err) {
        logger.error({ event: 'queued.pop_failed', queue: name, err: String(err) }, 'cannot hand out a message');
        return fail(err);
      }
      if (taken === null) return error();
      hold(c, taken.path, name);
      logger.debug({ event: 'queued.pop', qid: path.basename(taken.path), queue: name, via: 'take' }, 'message leased');
      return taken.data ? rawData(taken.data, taken.data.length, [taken.path]) : rawData(Buffer.alloc(0), 0, [taken.path, 'file']);
    },
  });

  server.on('copy', {
    params: 2,
    handle: async (c) => {
      const [name, p] = c.params as [string, string];
      if (!isQueueName(name)) return badName(name);
      try {
        await backend.copy?.(name, p);
        return ok();
      } catch (err) {
        return fail(err);
      }
    },
  });

  // popAndRead - `take` on a backend without its own: pop, then the bytes if small enough,
  // from the file pop just made sure of (PostgreSQL: its cache copy; no second query).
  const popAndRead = async (name: string, owner: number, max: number): Promise<{ path: string; data: Buffer | null } | null> => {
    const p = await backend.pop(name, owner);
    if (p === null) return null;
    const local = await readFileOnce(p, max).then(
      (data) => ({ data }),
      () => null,
    );
    if (local) return { path: p, data: local.data };
    const m = await backend.read(name, p).catch(() => null);
    if (!m || m.size > max) return { path: p, data: null };
    if (Buffer.isBuffer(m.body)) return { path: p, data: m.body };
    const chunks: Buffer[] = [];
    for await (const chunk of m.body) chunks.push(chunk as Buffer);
    return { path: p, data: Buffer.concat(chunks) };
  };

  server.on('done', {
    params: 2,
    handle: async (c) => {
      const [name, p] = c.params as [string, string];
      if (!isQueueName(name)) return badName(name);
      try {
        const qid = await backend.done(name, p);
        (c.conn.data.get(HELD) as Map<string, unknown> | undefined)?.delete(p);
        logger.info({ event: 'queued.done', qid, queue: name }, 'message removed');
        return ok();
      } catch (err) {
        return fail(err);
      }
    },
  });

  server.on('renew', {
    params: [2, 3],
    handle: async (c) => {
      const [name, p, secs] = c.params as [string, string, string?];
      if (!isQueueName(name)) return badName(name);
      const seconds = secs === undefined ? undefined : Number(secs);
      if (secs !== undefined && (!/^\d+(\.\d+)?$/.test(secs) || !(seconds! > 0 && seconds! <= MAX_LEASE_S))) return failure('5.5.4', `bad SECONDS: ${secs.slice(0, 40)}`);
      try {
        const left = await backend.renew(name, p, c.conn.id, seconds);
        logger.debug({ event: 'queued.renew', qid: path.basename(p), queue: name, seconds: left }, 'lease renewed');
        return ok(String(Math.floor(left)));
      } catch (err) {
        return fail(err);
      }
    },
  });

  server.on('defer', {
    params: [3, 4],
    handle: async (c) => {
      const [name, p, secs, reason = ''] = c.params as [string, string, string, string?];
      if (!isQueueName(name)) return badName(name);
      const seconds = Number(secs);
      if (!/^\d+(\.\d+)?$/.test(secs) || !(seconds <= MAX_DEFER_S)) return failure('5.5.4', `bad SECONDS: ${secs.slice(0, 40)}`);
      try {
        const m = await backend.defer(name, p, seconds, reason.slice(0, 1000));
        (c.conn.data.get(HELD) as Map<string, unknown> | undefined)?.delete(p);
        logger.info({ event: 'queued.defer', qid: path.basename(p), queue: name, seconds, attempts: m.attempts, reason }, 'message deferred');
        return ok();
      } catch (err) {
        return fail(err);
      }
    },
  });

  server.on('subscribe', {
    params: 2,
    handle: async (c) => {
      const [name, cb] = c.params as [string, string];
      if (!isQueueName(name)) return badName(name);
      try {
        await alerter.subscribe(name, cb);
      } catch (err) {
        return failure('5.5.4', `bad callback: ${(err as Error).message}`);
      }
      logger.info({ event: 'queued.subscribe', queue: name, callback: cb }, 'subscribed');
      // A new subscriber of a queue with mail waiting hears about it at once.
      if (await backend.hasReady(name).catch(() => false)) setImmediate(() => alerter.alert(name, cb));
      return ok();
    },
  });

  for (const verb of ['unsubscribe', 'unsuscribe']) {
    server.on(verb, {
      params: 2,
      handle: async (c) => {
        const [name, cb] = c.params as [string, string];
        if (!isQueueName(name)) return badName(name);
        if (!(await alerter.unsubscribe(name, cb))) return failure('5.5.4', `not subscribed: ${name} ; ${cb}`);
        logger.info({ event: 'queued.unsubscribe', queue: name, callback: cb }, 'unsubscribed');
        return ok();
      },
    });
  }

  server.on('get', {
    params: 2,
    handle: async (c) => {
      const [name, p] = c.params as [string, string];
      if (!isQueueName(name)) return badName(name);
      try {
        const m = await backend.read(name, p);
        if (!m) return failure('5.5.4', `not a message of queue ${name}: ${p}`);
        return rawData(m.body, m.size);
      } catch (err) {
        return failure('4.3.0', `cannot read ${path.basename(p)}: ${(err as Error).message}`);
      }
    },
  });

  registerAdmin(server, backend, qc.list_limit, logger);
  registerDirectory(server, backend.directory, logger);

  const tickMs = Math.max(20, Math.min(1000, (qc.lease_s * 1000) / 4));
  const ticker = setInterval(() => {
    backend.tick(Date.now());
  }, tickMs);
  ticker.unref();

  const ipc = await server.listen(config.ipc.queued);
  return {
    name: 'queued',
    addresses: { ipc },
    close: async () => {
      clearInterval(ticker);
      await server.close();
      alerter.close();
      await backend.close();
    },
  };
}
