// PgBackend - queued's messages in PostgreSQL ([queued] backend = "postgres"), so several queued
// instances, on one host or several, share one queue. Schema: pg-schema.ts (`fmail db migrate`).
//
// - put/push: the bytes go into fmail_queue_message (bytea) and `ok` is answered after COMMIT
//   (commit = WAL flushed, synchronous_commit's default). Inserts that arrive while one runs are
//   gathered into the next multi-row INSERT: one commit for the batch, as the file journal does.
// - pop: the oldest ready row of the queue is claimed with FOR UPDATE SKIP LOCKED (instances never
//   wait for each other's claims), marked leased with owner INSTANCE/CONNECTION and lease_until.
//   That PATH is the local SPOOL/QUEUE/cache/QID (not fsynced: the row is the truth), so
//   co-located consumers read a file as with the file spool; `get` serves the bytes over IPC to
//   the others. A message put or pushed through this instance got its cache copy then (written
//   beside the INSERT, or the slot file renamed), so popping it here writes nothing; one from
//   another instance is written at pop. Copies of messages finished elsewhere are removed by a
//   periodic check.
// - Leases: renew moves lease_until; done deletes the row; defer sets state deferred, not_before,
//   attempts + 1 and the reason. Only put/push, defer and the admin changes wait for the WAL
//   flush: pop, renew, done, abandon and the sweep commit with synchronous_commit off (their own
//   pool), because a crash of PostgreSQL losing one of them only hands a message out again
//   (at-least-once, as the file spool's unsynced `done`), and a flush per pop and per done would
//   bound the consumers' rate by the disk's flush latency. Every instance's tick gives back leases whose lease_until passed
//   (a dead instance's) and deferred rows that came due. INSTANCE is kept in SPOOL/instance-id,
//   so a restarted queued gives back its own earlier leases at once, as the file spool does.
// - Wake-ups: every change that makes rows ready runs pg_notify('fmail_queue', QUEUE) in its
//   transaction; each instance LISTENs and alerts its own subscribers (subscriptions stay per
//   instance, in subscriptions.json: a subscriber is reached through the instance it talks to).
//   As in the file spool an alert goes out when armed: at start and after a pop found nothing.
// - Slots (tmp/) are files on this host, as before, tracked in memory (recovered from tmp/).
//
// Why not pg-boss (evaluated, 12.x): it needs Node >= 22.12 (we run on Node 20); it is a job
// queue with JSON payloads, its own schema, retry/expiry policy and polling fetch, while queued's
// IPC semantics (slot/put/pop leases held per connection, renew, defer with a reason, admin
// listing, alerts to subscribers) would still have to be built around it. The few statements
// below (SKIP LOCKED claim, LISTEN/NOTIFY) are the part of it we need.

import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

import pg from 'pg';

import { errnoStatus } from '../ipc/index.js';
import { newQueueId } from '../mail/queue-id.js';
import { removeFile } from '../shared/durable.js';
import { runIo } from '../shared/io-pool.js';
import { rewriteCopy } from './cache-copy.js';
import type { Logger } from '../shared/log.js';
import { queueSize } from '../shared/metrics.js';
import { type ListedMessage, type MessageData, type Meta, type MsgState, type QueueBackend, type QueueCounts, QueueError, fileData } from './backend.js';
import { isQid, isQueueName } from './names.js';
import { NOTIFY_CHANNEL, checkSchema } from './pg-schema.js';
import type { QueueOptions } from './queue.js';
import { PgDirectory } from './server-directory.js';

const T = 'fmail_queue_message';
/** Rows per INSERT batch, and bytes: bounded statements. */
const BATCH_ROWS = 64;
const BATCH_BYTES = 16 * 1024 * 1024;
/** Rows the sweep gives back per tick (the rest on the next one). */
const SWEEP_ROWS = 1000;
const GAUGE_MS = 5000;
const LISTEN_RETRY_MS = 1000;
/** Cached copies checked against the table per round (see pruneCache). */
const PRUNE_ROWS = 1000;

/** Local - what this instance keeps of one queue: its folders, open slots, the alert flag. */
interface Local {
  name: string;
  tmpDir: string;
  cacheDir: string;
  /** Open slots: qid -> when handed out (or written, after a restart). */
  slots: Map<string, number>;
  /** Cache files of leases this instance handed out: qid -> lease end as last known. */
  held: Map<string, number>;
  /** qids whose cache/QID this instance wrote and that still hold their bytes. */
  cached: Set<string>;
  /** The next notification alerts subscribers (at start, and after a pop found nothing). */
  armed: boolean;
}

interface PendingInsert {
  qid: string;
  queue: string;
  data: Buffer;
  /** Write the cache copy here beside the INSERT (null: the caller has the file already). */
  cache: string | null;
  resolve(): void;
  reject(err: Error): void;
}

export class PgBackend implements QueueBackend {
  private readonly pool: pg.Pool;
  /** Connections with synchronous_commit off: lease moves whose loss only means a redelivery. */
  private readonly lazy: pg.Pool;
  private listener: pg.Client | null = null;
  private readonly locals = new Map<string, Local>();
  private pending: PendingInsert[] = [];
  /** Cache copies being written beside their INSERT: pop waits for one before answering its path. */
  private readonly copying = new Map<string, Promise<boolean>>();
  private inserting: Promise<void> | null = null;
  private sweeping = false;
  private lastGauge = 0;
  private closed = false;
  private readonly logger: Logger;
  readonly directory: PgDirectory;

  private constructor(
    private readonly dir: string,
    private readonly url: string,
    private readonly instance: string,
    private readonly opts: QueueOptions,
  ) {
    this.logger = opts.logger;
    this.pool = new pg.Pool({ connectionString: url, max: 4, idleTimeoutMillis: 30_000 });
    this.lazy = new pg.Pool({ connectionString: url, max: 8, idleTimeoutMillis: 30_000, options: '-c synchronous_commit=off' });
    // Announcements repeat every announce_s: losing one in a crash costs nothing.
    this.directory = new PgDirectory(this.lazy);
    // An idle connection that breaks (server restart) is dropped by the pool; say so, do not crash.
    for (const p of [this.pool, this.lazy]) p.on('error', (err) => this.logger.warn({ event: 'queued.pg_error', err: String(err) }, 'PostgreSQL connection lost'));
  }

  /** open - check the schema, take back this instance's old leases, LISTEN, recover local slots. */
  static async open(dir: string, url: string, opts: QueueOptions): Promise<PgBackend> {
    if (!url) throw new Error('[queued] backend = "postgres" needs [queued] postgres_url');
    mkdirSync(dir, { recursive: true });
    const b = new PgBackend(dir, url, instanceId(dir), opts);
    try {
      const c = await b.pool.connect();
      try {
        await checkSchema(c);
      } finally {
        c.release();
      }
      // Leases of this instance's previous run: their consumers' connections are gone.
      const back = await b.pool.query<{ queue: string }>(
        `WITH back AS (UPDATE ${T} SET state = 'ready', lease_owner = NULL, lease_until = NULL
           WHERE state = 'leased' AND split_part(lease_owner, '/', 1) = $1 RETURNING queue)
         SELECT q AS queue, pg_notify($2, q) FROM (SELECT DISTINCT queue AS q FROM back) d`,
        [b.instance, NOTIFY_CHANNEL],
      );
      if (back.rowCount) b.logger.info({ event: 'queued.pg_leases_back', queues: back.rows.map((r) => r.queue) }, 'leases of the previous run are ready again');
      await b.listen();
    } catch (err) {
      await b.pool.end().catch(() => undefined);
      await b.lazy.end().catch(() => undefined);
      b.listener?.end().catch(() => undefined);
      throw new Error(`queued: PostgreSQL at ${redact(url)}: ${(err as Error).message}`);
    }
    for (const name of readdirSync(dir)) {
      if (isQueueName(name) && statSync(path.join(dir, name)).isDirectory()) b.recoverLocal(name);
    }
    return b;
  }

  async slot(queue: string): Promise<string> {
    const l = this.local(queue);
    const qid = newQueueId();
    l.slots.set(qid, Date.now());
    return path.join(l.tmpDir, qid);
  }

  isSlot(queue: string, p: string): boolean {
    const l = this.locals.get(queue);
    const qid = l && qidIn(p, l.tmpDir);
    return !!qid && l.slots.has(qid);
  }

  async push(queue: string, p: string, _synced: boolean): Promise<string> {
    // `synced` does not matter here: the bytes are read and committed to the database.
    const { l, qid } = this.takeSlot(queue, p);
    const issued = l.slots.get(qid)!;
    l.slots.delete(qid);
    let data: Buffer;
    try {
      const st = lstatSync(p);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
      data = await fsp.readFile(p);
    } catch (err) {
      l.slots.set(qid, issued);
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'EINVAL') throw new QueueError(`slot file missing or not a regular file: ${p}`);
      throw new QueueError(`push failed: ${e.message}`, errnoStatus(err));
    }
    await this.insertOrRestore(l, qid, issued, data, false);
    // The slot file becomes the cache copy pop hands out here (no second write).
    try {
      await fsp.rename(p, path.join(l.cacheDir, qid));
      l.cached.add(qid);
    } catch {
      await removeFile(p).catch(() => undefined);
    }
    return qid;
  }

  async put(queue: string, p: string, data: Buffer[]): Promise<string> {
    const { l, qid } = this.takeSlot(queue, p);
    const issued = l.slots.get(qid)!;
    l.slots.delete(qid);
    await this.insertOrRestore(l, qid, issued, Buffer.concat(data), true);
    return qid;
  }

  async pop(queue: string, owner: number): Promise<string | null> {
    const l = this.local(queue);
    const r = await this.query<{ qid: string; data: Buffer; until: Date }>(
      `UPDATE ${T} m SET state = 'leased', lease_owner = $2, lease_until = now() + $3 * interval '1 millisecond'
       WHERE m.qid = (SELECT qid FROM ${T} WHERE queue = $1 AND state = 'ready' ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING m.qid, m.data, m.lease_until AS until`,
      [queue, this.owner(owner), this.opts.leaseMs],
      true,
    );
    const row = r.rows[0];
    if (!row) {
      l.armed = true;
      return null;
    }
    const file = path.join(l.cacheDir, row.qid);
    // A copy still being written (its INSERT committed first) is waited for, never read half-done.
    const copy = this.copying.get(row.qid);
    if (l.cached.has(row.qid) || (copy !== undefined && (await copy))) {
      l.held.set(row.qid, row.until.getTime());
      return file;
    }
    try {
      // A consumer of this host may still be reading the copy of an earlier lease.
      await rewriteCopy(file, row.data);
    } catch (err) {
      this.abandon(queue, file, owner);
      throw new QueueError(`cannot write ${file}: ${(err as Error).message}`, errnoStatus(err));
    }
    l.held.set(row.qid, row.until.getTime());
    l.cached.add(row.qid);
    return file;
  }

  abandon(queue: string, p: string, owner: number): void {
    const l = this.locals.get(queue);
    const qid = l && qidIn(p, l.cacheDir);
    if (!l || !qid) return;
    void this.query(
      `WITH back AS (UPDATE ${T} SET state = 'ready', lease_owner = NULL, lease_until = NULL
         WHERE qid = $1 AND state = 'leased' AND lease_owner = $2 RETURNING queue)
       SELECT pg_notify($3, queue) FROM back`,
      [qid, this.owner(owner), NOTIFY_CHANNEL],
      true,
    )
      .then(() => l.held.delete(qid))
      .catch((err: Error) => this.logger.warn({ event: 'queued.pg_abandon_failed', qid, err: err.message }, 'lease not given back; it expires'));
  }

  async done(queue: string, p: string): Promise<string> {
    const { l, qid } = this.leasedPath(queue, p);
    const r = await this.query(`DELETE FROM ${T} WHERE qid = $1 AND queue = $2 AND state = 'leased' AND split_part(lease_owner, '/', 1) = $3`, [qid, queue, this.instance], true);
    if (r.rowCount === 0) throw new QueueError(`not a leased message of queue ${queue}: ${p}`);
    await this.dropCache(l, qid);
    return qid;
  }

  async renew(queue: string, p: string, owner: number, seconds?: number): Promise<number> {
    const { l, qid } = this.leasedPath(queue, p);
    const ms = seconds === undefined ? this.opts.leaseMs : Math.round(seconds * 1000);
    const r = await this.query<{ until: Date; left: number }>(
      `UPDATE ${T} SET lease_until = greatest(lease_until, now() + $4 * interval '1 millisecond')
       WHERE qid = $1 AND queue = $2 AND state = 'leased' AND lease_owner = $3
       RETURNING lease_until AS until, extract(epoch FROM lease_until - now())::float8 AS left`,
      [qid, queue, this.owner(owner), ms],
      true,
    );
    const row = r.rows[0];
    if (!row) throw new QueueError(`not a leased message of queue ${queue}: ${p}`);
    l.held.set(qid, row.until.getTime());
    return Math.max(0, row.left);
  }

  async defer(queue: string, p: string, seconds: number, reason: string): Promise<Meta> {
    const { l, qid } = this.leasedPath(queue, p);
    const r = await this.query<{ attempts: number; nb: Date }>(
      `UPDATE ${T} SET state = 'deferred', not_before = now() + $4 * interval '1 millisecond', attempts = attempts + 1,
         reason = $5, lease_owner = NULL, lease_until = NULL
       WHERE qid = $1 AND queue = $2 AND state = 'leased' AND split_part(lease_owner, '/', 1) = $3
       RETURNING attempts, not_before AS nb`,
      [qid, queue, this.instance, Math.round(seconds * 1000), reason],
    );
    const row = r.rows[0];
    if (!row) throw new QueueError(`not a leased message of queue ${queue}: ${p}`);
    // The copy stays for the next attempt (its bytes do not change).
    l.held.delete(qid);
    return { attempts: row.attempts, reason, notBefore: row.nb.getTime() };
  }

  async read(queue: string, pathOrQid: string): Promise<MessageData | null> {
    const l = this.locals.get(queue);
    const qid = isQid(pathOrQid) ? pathOrQid : l ? qidIn(pathOrQid, l.cacheDir) : null;
    if (!qid) return null;
    const r = await this.query<{ data: Buffer }>(`SELECT data FROM ${T} WHERE qid = $1 AND queue = $2`, [qid, queue], true);
    const data = r.rows[0]?.data;
    return data ? { size: data.length, body: data } : null;
  }

  async hasReady(queue: string): Promise<boolean> {
    const r = await this.query<{ e: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${T} WHERE queue = $1 AND state = 'ready') AS e`, [queue], true);
    return r.rows[0]?.e === true;
  }

  tick(now: number): void {
    for (const l of this.locals.values()) {
      for (const [qid, issued] of l.slots) {
        if (now - issued < this.opts.slotGraceMs) continue;
        l.slots.delete(qid);
        rmSync(path.join(l.tmpDir, qid), { force: true });
        this.logger.info({ event: 'queued.slot_expired', qid, queue: l.name }, 'stale slot removed');
      }
      // Leases that ran out (given back by some instance's sweep). Their copies stay: a qid's
      // bytes never change, and pruneCache removes copies of messages finished elsewhere.
      for (const [qid, until] of l.held) if (until < now) l.held.delete(qid);
    }
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    void this.sweep(now)
      .catch((err: Error) => this.logger.warn({ event: 'queued.pg_sweep_failed', err: err.message }, 'cannot expire leases and deferrals now'))
      .finally(() => (this.sweeping = false));
  }

  async stats(): Promise<Array<{ name: string; counts: QueueCounts }>> {
    const r = await this.query<{ queue: string; state: MsgState; n: string }>(`SELECT queue, state, count(*) AS n FROM ${T} GROUP BY queue, state`, [], true);
    const by = new Map<string, QueueCounts>();
    const counts = (name: string): QueueCounts => {
      let c = by.get(name);
      if (!c) by.set(name, (c = { ready: 0, leased: 0, deferred: 0, slots: 0 }));
      return c;
    };
    for (const row of r.rows) counts(row.queue)[row.state as 'ready' | 'leased' | 'deferred'] = Number(row.n);
    for (const l of this.locals.values()) counts(l.name).slots = l.slots.size;
    return [...by.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, c]) => ({ name, counts: c }));
  }

  async list(queue: string | undefined, limit: number): Promise<ListedMessage[]> {
    const r = await this.query<{ qid: string; queue: string; state: MsgState; t: Date; size: number; nb: Date | null; attempts: number; reason: string }>(
      `SELECT qid, queue, state, queued_at AS t, size, not_before AS nb, attempts, reason FROM (
         SELECT *, row_number() OVER (PARTITION BY queue ORDER BY CASE state WHEN 'ready' THEN 0 WHEN 'leased' THEN 1 ELSE 2 END, seq) AS n
         FROM ${T} WHERE $1::text IS NULL OR queue = $1) x
       WHERE n <= $2 ORDER BY queue, n`,
      [queue ?? null, limit],
    );
    const out: ListedMessage[] = r.rows.map((m) => ({
      qid: m.qid,
      queue: m.queue,
      state: m.state,
      time: m.t.getTime(),
      size: m.size,
      meta: m.attempts > 0 || m.nb ? { attempts: m.attempts, reason: m.reason, notBefore: m.nb?.getTime() ?? 0 } : undefined,
    }));
    for (const l of this.locals.values()) {
      if (queue !== undefined && l.name !== queue) continue;
      for (const [qid, issued] of [...l.slots].slice(0, limit)) {
        const st = lstatSync(path.join(l.tmpDir, qid), { throwIfNoEntry: false });
        out.push({ qid, queue: l.name, state: 'slot', time: st ? st.mtimeMs : issued, size: st ? st.size : 0 });
      }
    }
    return out;
  }

  async show(qid: string): Promise<MessageData | null> {
    for (const l of this.locals.values()) if (l.slots.has(qid)) return fileData(path.join(l.tmpDir, qid));
    const r = await this.query<{ data: Buffer }>(`SELECT data FROM ${T} WHERE qid = $1`, [qid]);
    const data = r.rows[0]?.data;
    return data ? { size: data.length, body: data } : null;
  }

  async flush(queue: string | undefined): Promise<number> {
    const r = await this.query<{ n: string }>(
      `WITH back AS (UPDATE ${T} SET state = 'ready', not_before = NULL WHERE state = 'deferred' AND ($1::text IS NULL OR queue = $1) RETURNING queue),
       woke AS (SELECT pg_notify($2, q) FROM (SELECT DISTINCT queue AS q FROM back) d)
       SELECT (SELECT count(*) FROM back) AS n, (SELECT count(*) FROM woke) AS w`,
      [queue ?? null, NOTIFY_CHANNEL],
    );
    return Number(r.rows[0]?.n ?? 0);
  }

  async requeue(qid: string): Promise<string | null> {
    const r = await this.query<{ queue: string }>(
      `WITH back AS (UPDATE ${T} SET state = 'ready', not_before = NULL, lease_owner = NULL, lease_until = NULL
         WHERE qid = $1 AND state IN ('deferred', 'leased') RETURNING queue)
       SELECT queue, pg_notify($2, queue) FROM back
       UNION ALL SELECT queue, NULL FROM ${T} WHERE qid = $1 AND state = 'ready' AND NOT EXISTS (SELECT 1 FROM back)`,
      [qid, NOTIFY_CHANNEL],
    );
    return r.rows[0]?.queue ?? null;
  }

  async remove(qid: string): Promise<string | null> {
    for (const l of this.locals.values()) {
      if (!l.slots.delete(qid)) continue;
      rmSync(path.join(l.tmpDir, qid), { force: true });
      return l.name;
    }
    const r = await this.query<{ queue: string }>(`DELETE FROM ${T} WHERE qid = $1 RETURNING queue`, [qid]);
    const queue = r.rows[0]?.queue;
    if (!queue) return null;
    const l = this.locals.get(queue);
    if (l) await this.dropCache(l, qid);
    return queue;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.inserting) await this.inserting;
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => undefined);
    await this.pool.end();
    await this.lazy.end();
  }

  // --- internals ---

  private owner(conn: number): string {
    return `${this.instance}/${conn}`;
  }

  // query - on the durable pool, or with LAZY on the synchronous_commit=off one.
  private query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], lazy = false): Promise<pg.QueryResult<R>> {
    return (lazy ? this.lazy : this.pool).query<R>(sql, params).catch((err: Error) => {
      throw err instanceof QueueError ? err : new QueueError(`database: ${err.message}`, '4.3.0');
    });
  }

  private local(name: string): Local {
    let l = this.locals.get(name);
    if (!l) {
      const qdir = path.join(this.dir, name);
      l = { name, tmpDir: path.join(qdir, 'tmp'), cacheDir: path.join(qdir, 'cache'), slots: new Map(), held: new Map(), cached: new Set(), armed: true };
      mkdirSync(l.tmpDir, { recursive: true });
      mkdirSync(l.cacheDir, { recursive: true });
      this.locals.set(name, l);
    }
    return l;
  }

  // recoverLocal - at start: cache copies are stale (pop writes them anew), slots may still be pushed.
  private recoverLocal(name: string): void {
    const l = this.local(name);
    for (const f of readdirSync(l.cacheDir)) unlinkSync(path.join(l.cacheDir, f));
    const now = Date.now();
    for (const f of readdirSync(l.tmpDir)) {
      if (!isQid(f)) continue;
      const st = lstatSync(path.join(l.tmpDir, f), { throwIfNoEntry: false });
      if (st) l.slots.set(f, Math.min(now, st.mtimeMs));
    }
  }

  private takeSlot(queue: string, p: string): { l: Local; qid: string } {
    const l = this.locals.get(queue);
    const qid = l && qidIn(p, l.tmpDir);
    if (!l || !qid || !l.slots.has(qid)) throw new QueueError(`not an open slot of queue ${queue}: ${p}`);
    return { l, qid };
  }

  private leasedPath(queue: string, p: string): { l: Local; qid: string } {
    const l = this.locals.get(queue);
    const qid = l && qidIn(p, l.cacheDir);
    if (!l || !qid) throw new QueueError(`not a leased message of queue ${queue}: ${p}`);
    return { l, qid };
  }

  private async dropCache(l: Local, qid: string): Promise<void> {
    l.held.delete(qid);
    l.cached.delete(qid);
    await removeFile(path.join(l.cacheDir, qid)).catch(() => undefined);
  }

  private async insertOrRestore(l: Local, qid: string, issued: number, data: Buffer, cache: boolean): Promise<void> {
    try {
      await this.insert(qid, l.name, data, cache ? path.join(l.cacheDir, qid) : null);
    } catch (err) {
      l.slots.set(qid, issued);
      throw err instanceof QueueError ? err : new QueueError(`put failed: ${(err as Error).message}`, '4.3.0');
    }
  }

  // insert - resolves once the row is committed; rows arriving meanwhile share the next commit.
  private insert(qid: string, queue: string, data: Buffer, cache: string | null): Promise<void> {
    if (this.closed) return Promise.reject(new QueueError('queued is stopping', '4.3.0'));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ qid, queue, data, cache, resolve, reject });
      if (!this.inserting) this.inserting = this.runInserts();
    });
  }

  private async runInserts(): Promise<void> {
    while (this.pending.length > 0) {
      let bytes = 0;
      let n = 0;
      while (n < this.pending.length && n < BATCH_ROWS && (n === 0 || bytes + this.pending[n]!.data.length <= BATCH_BYTES)) bytes += this.pending[n++]!.data.length;
      const batch = this.pending.splice(0, n);
      const values: string[] = [];
      const params: unknown[] = [NOTIFY_CHANNEL];
      for (const b of batch) {
        const i = params.length;
        values.push(`($${i + 1}, $${i + 2}, $${i + 3}, $${i + 4})`);
        params.push(b.qid, b.queue, b.data, b.data.length);
      }
      // The cache copies in one io job while the INSERT runs (a copy whose row failed is removed).
      const files = batch.filter((b) => b.cache).map((b) => ({ path: b.cache!, data: [b.data] }));
      const copies = files.length ? runIo({ op: 'journal', writes: [], files, syncFds: [] }).then(() => true, () => false) : Promise.resolve(false);
      for (const b of batch) if (b.cache) this.copying.set(b.qid, copies);
      try {
        // One statement, one transaction: the rows and their NOTIFY commit together.
        await this.pool.query(
          `WITH ins AS (INSERT INTO ${T} (qid, queue, data, size) VALUES ${values.join(', ')} RETURNING queue)
           SELECT pg_notify($1, q) FROM (SELECT DISTINCT queue AS q FROM ins) d`,
          params,
        );
        if (await copies) for (const b of batch) if (b.cache) this.locals.get(b.queue)?.cached.add(b.qid);
        for (const b of batch) b.resolve();
      } catch (err) {
        const e = new QueueError(`database: ${(err as Error).message}`, '4.3.0');
        await copies;
        for (const f of files) await removeFile(f.path).catch(() => undefined);
        for (const b of batch) b.reject(e);
      } finally {
        for (const b of batch) this.copying.delete(b.qid);
      }
    }
    this.inserting = null;
  }

  // sweep - give back expired leases and due deferrals (any instance's), update the gauge.
  private async sweep(now: number): Promise<void> {
    const r = await this.lazy.query<{ qid: string; queue: string; was: string }>(
      `WITH due AS (
         SELECT qid, state AS was FROM ${T}
         WHERE (state = 'leased' AND lease_until <= now()) OR (state = 'deferred' AND not_before <= now())
         LIMIT ${SWEEP_ROWS} FOR UPDATE SKIP LOCKED),
       back AS (
         UPDATE ${T} m SET state = 'ready', lease_owner = NULL, lease_until = NULL FROM due
         WHERE m.qid = due.qid RETURNING m.qid, m.queue, due.was),
       woke AS (SELECT pg_notify($1, q) FROM (SELECT DISTINCT queue AS q FROM back) d)
       SELECT qid, queue, was FROM back, (SELECT count(*) FROM woke) w`,
      [NOTIFY_CHANNEL],
    );
    for (const row of r.rows) {
      if (row.was === 'leased') this.logger.warn({ event: 'queued.lease_expired', qid: row.qid, queue: row.queue }, 'lease expired; message ready again');
    }
    if (now - this.lastGauge >= GAUGE_MS) {
      this.lastGauge = now;
      await this.pruneCache();
      for (const { name, counts } of await this.stats()) for (const [state, n] of Object.entries(counts)) queueSize.set({ queue: name, state }, n);
    }
  }

  // pruneCache - cache copies of messages no longer in the table (finished by another instance)
  // go; PRUNE_ROWS per round, taking turns through the set.
  private async pruneCache(): Promise<void> {
    for (const l of this.locals.values()) {
      const idle = [...l.cached].filter((q) => !l.held.has(q));
      if (idle.length === 0) continue;
      const start = Math.floor(Math.random() * idle.length);
      const pick = idle.slice(start, start + PRUNE_ROWS);
      const r = await this.lazy.query<{ qid: string }>(`SELECT qid FROM ${T} WHERE qid = ANY($1::text[])`, [pick]);
      const alive = new Set(r.rows.map((x) => x.qid));
      for (const qid of pick) if (!alive.has(qid) && !l.held.has(qid)) await this.dropCache(l, qid);
    }
  }

  // listen - the LISTEN connection; reconnected (and every armed queue alerted) when it breaks.
  private async listen(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url });
    c.on('notification', (msg) => {
      if (msg.channel !== NOTIFY_CHANNEL || !msg.payload || !isQueueName(msg.payload)) return;
      this.woke(msg.payload);
    });
    c.on('error', (err) => {
      this.logger.warn({ event: 'queued.pg_listen_lost', err: String(err) }, 'PostgreSQL LISTEN connection lost; reconnecting');
      void c.end().catch(() => undefined);
    });
    c.on('end', () => {
      if (this.listener !== c || this.closed) return;
      this.listener = null;
      const retry = (): void => {
        if (this.closed) return;
        this.listen().then(
          // Notifications may have been missed while it was down.
          () => {
            for (const l of this.locals.values()) this.woke(l.name);
          },
          () => setTimeout(retry, LISTEN_RETRY_MS).unref(),
        );
      };
      setTimeout(retry, LISTEN_RETRY_MS).unref();
    });
    await c.connect();
    await c.query(`LISTEN ${NOTIFY_CHANNEL}`);
    this.listener = c;
  }

  private woke(queue: string): void {
    const l = this.locals.get(queue);
    if (l && !l.armed) return;
    if (l) l.armed = false;
    this.opts.onNewMail({ name: queue });
  }
}

// The queue id in P if P is exactly DIR/QID; anything else is null.
function qidIn(p: string, dir: string): string | null {
  if (path.dirname(p) !== dir) return null;
  const qid = path.basename(p);
  return isQid(qid) && path.join(dir, qid) === p ? qid : null;
}

// instanceId - this spool's name in lease owners: made once, kept in SPOOL/instance-id.
function instanceId(dir: string): string {
  const file = path.join(dir, 'instance-id');
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{16}$/.test(id)) return id;
  }
  const id = randomBytes(8).toString('hex');
  writeFileSync(file, id + '\n', { mode: 0o600 });
  return id;
}

/** redact - a URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
