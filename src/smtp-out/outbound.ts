// Outbound - the delivery engine of smtp-out. Named mechanisms, after Postfix's qmgr/smtp:
//   pop loop        a QueueConsumer (src/mail): alerts + a poll timer pop `outgoing` while fewer
//                   than [smtp_out] concurrency files are in hand; their leases are renewed while
//                   a delivery runs, so a slow session never has its mail handed out twice
//   destinations    jobs are grouped by next hop (route, relay or the domain's MX); each has its
//                   own job list and at most destination_concurrency sessions
//   jobs in hand    a destination holds at most destination_jobs_limit jobs (waiting or being
//                   sent) in the consumer's slots, so a slow or dead destination holds only its
//                   share of them and cannot starve the others
//   backlog         a file popped for a destination at its limit is parked in memory (its lease
//                   still renewed, its pop slot freed) and moves up when one of the
//                   destination's jobs finishes; with 10 x concurrency files parked, more go
//                   straight back to the queue for a few seconds instead (memory stays bounded)
//   dead-destination cache  a destination whose hosts all failed to connect is "dead" for
//                   dead_destination_s: its mail is deferred at once, without a connection
//                   attempt (and connect timeout) per message
//   slow start      a destination that has not connected yet gets one session; more once one
//                   succeeded
//   round robin     at most max_sessions sessions in all; when that is reached, destinations
//                   with work wait in a ring and each freed session goes to the next in turn (a
//                   session hands its slot over after each transaction when others are waiting)
//   rate delay      destination_rate_delay > 0: one session per destination and that pause
//                   between two deliveries to it (what Postfix calls destination_rate_delay)
//   transactions    every recipient of one `outgoing` file (accept.ts puts a message's
//                   recipients for one destination in one file) goes in one transaction
//   connection cache  a session that runs out of work waits connection_cache_s for more
//                   before QUIT, so mail arriving just after reuses it
//   back-off        4xx or network failure -> defer for clamp(age, first_retry_s, max_backoff_s):
//                   doubling intervals, as Postfix; age >= max_age_s -> bounce (5.4.7)
//   partial result  some recipients of a file sent, others to retry: the rest move to a new
//                   `outgoing` file that waits its back-off (`not-before`), the old one is done
//   dead session    a cached session the peer dropped silently: the job goes again once on a
//                   fresh session instead of being deferred
//   bounce          5xx, null MX, no SMTPUTF8 for a UTF-8 envelope (5.6.7) -> one DSN per file

import path from 'node:path';

import type { IpcClient } from '../ipc/index.js';
import type { Config } from '../config/schema.js';
import { domainOf } from '../mail/address.js';
import { queueBounce } from '../mail/bounce.js';
import type { DsnRecipient } from '../mail/dsn.js';
import { type Envelope, readEnvelopeFile } from '../mail/envelope.js';
import { dnsFor } from '../mail/auth/dns.js';
import { MtaSts } from '../mail/auth/mta-sts.js';
import { QueueConsumer } from '../mail/queue-consumer.js';
import { type LocalFile, QueueFiles } from '../mail/queue-copy.js';
import { fileBody, queueIsRemote, spoolMessage } from '../mail/spool.js';
import { dataPath } from '../config/load.js';
import { ipcClient } from '../shared/ipc-setup.js';
import type { Logger } from '../shared/log.js';
import { messagesBounced, messagesDeferred, messagesDelivered } from '../shared/metrics.js';
import { MAX_RCPTS_PER_FILE } from './accept.js';
import { DeliveryError, type Nexthop, nexthopFor } from './nexthop.js';
import { relayTls } from './relay-tls.js';
import { stsPlan } from './mta-sts-plan.js';
import { Session, SmtpError } from './session.js';

/** Seconds a file popped with the backlog full waits in the queue before it comes back. */
const BUSY_DEFER_S = 5;
/** Files parked in the backlog at most, per pop slot ([smtp_out] concurrency). */
const BACKLOG_PER_SLOT = 10;

/** Item - one popped `outgoing` file: its recipients' results are gathered until all are in. */
interface Item {
  /** Frees the file's slot in the consumer once it is done, deferred or requeued. */
  release: () => void;
  /** Frees the pop slot early, lease still renewed (every open job of the file is parked). */
  unslot: () => void;
  /** Jobs of this file parked in a backlog. */
  parked: number;
  /** The PATH queued handed out (done, defer). */
  file: string;
  /** Where its bytes are read on this host (FILE when co-located). */
  local: string;
  qid: string;
  env: Envelope;
  bodyOffset: number;
  size: number;
  eightBit: boolean;
  /** Jobs of this file still running. */
  open: number;
  failed: Array<{ rcpt: string; f: Failure }>;
}

/** Job - the recipients of one item that go to one destination: one SMTP transaction. */
interface Job {
  item: Item;
  rcpts: string[];
  /** The envelope has non-ASCII addresses: needs SMTPUTF8 (RFC 6531). */
  utf8: boolean;
  /** Counted in its destination's jobs in hand. */
  dest?: Destination;
  /** Already retried once on a fresh session after a cached one turned out dead. */
  retried?: boolean;
}

interface Destination {
  nexthop: Nexthop;
  jobs: Job[];
  /** Jobs in hand: waiting in `jobs` or in a transaction. */
  held: number;
  /** Jobs over the limit, parked until a held one finishes. */
  backlog: Job[];
  active: number;
  idle: Array<{ session: Session; timer: NodeJS.Timeout }>;
  /** Dead-destination cache: no connection attempt before this time (epoch ms). */
  deadUntil: number;
  deadReason?: Failure;
  /** Slow start: a session has connected since the destination was last dead. */
  connected: boolean;
  /** Rate delay: no transaction before this time (epoch ms). */
  nextSend: number;
}

interface Failure {
  permanent: boolean;
  status: string;
  diagnostic: string;
  host?: string;
  /** Only "its destination was at its jobs-in-hand limit": back soon, no attempt counted. */
  busy?: boolean;
}

export class Outbound {
  readonly queued: IpcClient;
  private readonly files: QueueFiles;
  private readonly authd: IpcClient;
  private readonly sts: MtaSts;
  private readonly destinations = new Map<string, Destination>();
  /** Round robin: destinations with work waiting for a session slot, in turn. */
  private readonly ring: Destination[] = [];
  private sessions = 0;
  /** Jobs parked in all backlogs. */
  private parked = 0;
  private readonly consumer: QueueConsumer;
  private closed = false;

  constructor(
    private config: Config,
    private readonly logger: Logger,
  ) {
    this.queued = ipcClient(config, 'queued');
    if (!config.smtp_out.queue_colocated) queueIsRemote(this.queued);
    this.files = new QueueFiles(this.queued, config.smtp_out.queue_colocated ? null : dataPath(config, 'smtp-out/queue-copies'));
    this.authd = ipcClient(config, 'authd');
    this.sts = new MtaSts(config.mta_sts, dnsFor(config.dns), (domain, err) => logger.warn({ event: 'smtp-out.mta_sts_error', domain, err }, 'MTA-STS policy lookup failed'));
    this.consumer = new QueueConsumer({
      queued: this.queued,
      queue: 'outgoing',
      concurrency: () => this.config.smtp_out.concurrency,
      pollMs: config.smtp_out.poll_s * 1000,
      logger,
      events: 'smtp-out',
      // A file keeps its slot until every recipient is sent, deferred or bounced (see finish).
      take: (file, release, unslot) =>
        this.load(file, release, unslot).catch((err: unknown) => {
          this.logger.error({ event: 'smtp-out.load_failed', file, err: String(err) }, 'cannot load job');
          release();
        }),
    });
  }

  start(callback: string): void {
    this.consumer.start(callback);
  }

  /** destinationOf - the next-hop key of DOMAIN under the current configuration (accept.ts). */
  destinationOf(domain: string): string {
    return nexthopFor(this.config.smtp_out, domain, dnsFor(this.config.dns)).key;
  }

  /** reload - new routes and credentials apply to the next session; cached ones are closed. */
  reload(next: Config): void {
    this.config = next;
    for (const d of this.destinations.values()) this.closeIdle(d);
  }

  kick(): void {
    this.consumer.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.consumer.close(5000);
    for (const d of this.destinations.values()) this.closeIdle(d);
    this.queued.close();
    this.authd.close();
  }

  /** load - read a popped file and put its recipients on their destinations' job lists. */
  private async load(file: string, releaseSlot: () => void, unslot: () => void): Promise<void> {
    let parsed;
    let local: LocalFile = { file, drop: async () => {} };
    const release = (): void => {
      void local.drop();
      releaseSlot();
    };
    try {
      local = await this.files.local('outgoing', file);
      parsed = await readEnvelopeFile(local.file);
    } catch (err) {
      const gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
      this.logger.error({ event: 'smtp-out.bad_file', qid: path.basename(file), err: String(err) }, gone ? 'queue file vanished' : 'unreadable queue file');
      if (gone) await this.queued.request('done', ['outgoing', file]).catch(() => undefined);
      else await this.queued.request('defer', ['outgoing', file, '3600', `unreadable queue file: ${String(err)}`]).catch(() => undefined);
      release();
      return;
    }
    const env = parsed.envelope;
    const item: Item = { release, unslot, parked: 0, file, local: local.file, qid: env.qid, env, bodyOffset: parsed.bodyOffset, size: parsed.size, eightBit: env.extra?.['eight-bit'] === '1', open: 0, failed: [] };
    // A requeued remainder waits out its back-off here (see requeue()).
    const notBefore = Date.parse(env.extra?.['not-before'] ?? '');
    if (notBefore > Date.now() || env.rcpt.length === 0) {
      try {
        if (env.rcpt.length === 0) await this.queued.request('done', ['outgoing', file]);
        else await this.queued.request('defer', ['outgoing', file, String(Math.ceil((notBefore - Date.now()) / 1000)), (env.extra?.reason ?? 'waiting for retry').slice(0, 500)]);
      } finally {
        release();
      }
      return;
    }
    const byDest = new Map<string, { nexthop: Nexthop; rcpts: string[] }>();
    for (const rcpt of env.rcpt) {
      const nexthop = nexthopFor(this.config.smtp_out, domainOf(rcpt), dnsFor(this.config.dns));
      const g = byDest.get(nexthop.key) ?? { nexthop, rcpts: [] };
      byDest.set(nexthop.key, g);
      g.rcpts.push(rcpt);
    }
    const jobs: Array<{ dest: Destination; job: Job }> = [];
    for (const { nexthop, rcpts } of byDest.values()) {
      const dest = this.destination(nexthop);
      for (let i = 0; i < rcpts.length; i += MAX_RCPTS_PER_FILE) {
        const part = rcpts.slice(i, i + MAX_RCPTS_PER_FILE);
        jobs.push({ dest, job: { item, rcpts: part, utf8: /[^\x00-\x7f]/.test(env.from + part.join('')) } });
      }
    }
    item.open = jobs.length;
    const cfg = this.config.smtp_out;
    for (const { dest, job } of jobs) {
      if (dest.deadUntil > Date.now() && dest.deadReason) {
        // Dead-destination cache: deferred without a connection attempt.
        this.failDead(dest, job);
      } else if (dest.held < cfg.destination_jobs_limit) {
        this.hold(dest, job);
      } else if (this.parked < BACKLOG_PER_SLOT * cfg.concurrency) {
        dest.backlog.push(job);
        this.parked++;
        if (++item.parked === item.open) item.unslot();
      } else {
        const f: Failure = { permanent: false, status: '4.4.5', diagnostic: `destination ${dest.nexthop.key} busy: ${dest.held} jobs in hand, ${dest.backlog.length} waiting`, busy: true };
        this.settle(job, job.rcpts.map((rcpt) => ({ rcpt, f })));
      }
    }
  }

  /** hold - JOB joins its destination's jobs in hand and may start a session. */
  private hold(dest: Destination, job: Job): void {
    job.dest = dest;
    dest.held++;
    dest.jobs.push(job);
    this.schedule(dest);
  }

  /** unpark - a job of DEST finished: the oldest parked one moves up into its place. */
  private unpark(dest: Destination): void {
    while (dest.backlog.length > 0 && dest.held < this.config.smtp_out.destination_jobs_limit) {
      const job = dest.backlog.shift()!;
      this.parked--;
      job.item.parked--;
      if (dest.deadUntil > Date.now() && dest.deadReason) this.failDead(dest, job);
      else this.hold(dest, job);
    }
  }

  private failDead(dest: Destination, job: Job): void {
    const f = dest.deadReason!;
    this.settle(job, job.rcpts.map((rcpt) => ({ rcpt, f: { ...f, diagnostic: `${f.diagnostic} (destination dead, not retried before ${new Date(dest.deadUntil).toISOString()})` } })));
  }

  private destination(nexthop: Nexthop): Destination {
    let dest = this.destinations.get(nexthop.key);
    if (!dest) {
      dest = { nexthop, jobs: [], held: 0, backlog: [], active: 0, idle: [], deadUntil: 0, connected: false, nextSend: 0 };
      this.destinations.set(nexthop.key, dest);
    }
    dest.nexthop = nexthop; // the current configuration's credentials
    return dest;
  }

  // schedule - start sessions while there is more distinct work than sessions, within the
  // destination's limit (1 in slow start or with a rate delay) and the global max_sessions.
  private schedule(dest: Destination): void {
    const cfg = this.config.smtp_out;
    const limit = cfg.destination_rate_delay > 0 || !dest.connected ? 1 : cfg.destination_concurrency;
    while (dest.jobs.length > dest.active && dest.active < limit && !this.closed) {
      if (this.sessions >= cfg.max_sessions) {
        if (!this.ring.includes(dest)) this.ring.push(dest);
        return;
      }
      this.sessions++;
      dest.active++;
      void this.worker(dest)
        .catch((err: unknown) => this.logger.error({ event: 'smtp-out.worker_failed', destination: dest.nexthop.key, err: String(err) }, 'worker failed'))
        .finally(() => {
          dest.active--;
          this.sessions--;
          // The freed slot goes to the next destination in the ring, then this one queues again.
          while (this.sessions < this.config.smtp_out.max_sessions && this.ring.length > 0) this.schedule(this.ring.shift()!);
          if (dest.jobs.length > 0) this.schedule(dest);
        });
    }
  }

  /** worker - one session's life: take jobs until none is left (or others wait), then cache it. */
  private async worker(dest: Destination): Promise<void> {
    let session: Session | null = null;
    while (dest.jobs.length > 0 && !this.closed) {
      const delay = this.config.smtp_out.destination_rate_delay;
      if (delay > 0 && dest.nextSend > Date.now()) await new Promise((r) => setTimeout(r, dest.nextSend - Date.now()));
      if (dest.jobs.length === 0) break;
      if (!session) session = this.cachedSession(dest);
      if (!session) {
        try {
          session = await this.openSession(dest);
          dest.connected = true;
        } catch (err) {
          // The destination is unreachable: every job waiting for it shares the verdict, and
          // so does new mail for it until dead_destination_s has passed.
          const failure = toFailure(err);
          if (!failure.permanent) {
            dest.connected = false;
            dest.deadReason = failure;
            dest.deadUntil = Date.now() + this.config.smtp_out.dead_destination_s * 1000;
            this.logger.info({ event: 'smtp-out.destination_dead', destination: dest.nexthop.key, reason: failure.diagnostic, until: new Date(dest.deadUntil).toISOString() }, 'destination marked dead');
          }
          for (const j of dest.jobs.splice(0)) this.settle(j, j.rcpts.map((rcpt) => ({ rcpt, f: failure })));
          // The backlog moves up as these settle: with the destination dead, straight to a deferral.
          this.unpark(dest);
          return;
        }
      }
      const job = dest.jobs.shift()!;
      const outcome = await this.transact(session, job);
      if (delay > 0) dest.nextSend = Date.now() + delay * 1000;
      if (outcome === 'retry') {
        // A cached session the peer had silently closed: once more on a fresh one.
        job.retried = true;
        dest.jobs.unshift(job);
      }
      if (outcome !== 'usable') {
        session.close();
        session = null;
      }
      // Round robin: others wait for a session slot, so this one gives its slot back.
      if (this.ring.length > 0 && outcome !== 'retry') break;
    }
    if (session && session.usable && !this.closed && this.config.smtp_out.connection_cache_s > 0) {
      const entry = { session, timer: setTimeout(() => this.uncache(dest, entry), this.config.smtp_out.connection_cache_s * 1000) };
      entry.timer.unref();
      dest.idle.push(entry);
    } else {
      session?.close();
    }
  }

  private cachedSession(dest: Destination): Session | null {
    while (dest.idle.length > 0) {
      const entry = dest.idle.pop()!;
      clearTimeout(entry.timer);
      if (entry.session.usable) return entry.session;
      entry.session.close();
    }
    return null;
  }

  private uncache(dest: Destination, entry: { session: Session; timer: NodeJS.Timeout }): void {
    const i = dest.idle.indexOf(entry);
    if (i >= 0) dest.idle.splice(i, 1);
    entry.session.close();
  }

  private closeIdle(dest: Destination): void {
    for (const i of dest.idle.splice(0)) {
      clearTimeout(i.timer);
      i.session.close();
    }
  }

  /** openSession - try the next hop's hosts in order; the last error decides. */
  private async openSession(dest: Destination): Promise<Session> {
    const all = await dest.nexthop.hosts();
    // MX destinations follow the domain's MTA-STS policy (mta-sts-plan.ts).
    const sts = dest.nexthop.mx ? await stsPlan(this.sts, dest.nexthop.mx, all, this.logger) : null;
    const hosts = sts?.hosts ?? all;
    let last: unknown = new DeliveryError('no hosts', false, '4.4.1');
    for (const host of hosts) {
      try {
        const s = await Session.open(host, {
          hostname: this.config.hostname,
          connectTimeoutMs: this.config.smtp_out.connect_timeout_s * 1000,
          commandTimeoutMs: this.config.smtp_out.command_timeout_s * 1000,
          auth: dest.nexthop.auth,
          tls: dest.nexthop.relayTls ? relayTls(this.config, host) : sts?.tls(host),
        });
        sts?.connected(s, host);
        this.logger.debug({ event: 'smtp-out.connected', host: `${host.host}:${host.port}`, tls: s.secure }, 'connected');
        return s;
      } catch (err) {
        last = err instanceof SmtpError ? new DeliveryError(`connect to ${host.host}[${host.port}]: ${err.message}`, false, '4.4.1') : err;
        this.logger.info({ event: 'smtp-out.connect_failed', host: `${host.host}:${host.port}`, err: String((last as Error).message) }, 'connect failed');
      }
    }
    throw last;
  }

  /** transact - one message to a job's recipients; says whether the session can go on. */
  private async transact(session: Session, job: Job): Promise<'usable' | 'closed' | 'retry'> {
    const { item } = job;
    const host = `${session.host.host}:${session.host.port}`;
    const all = (f: Failure): void => this.settle(job, job.rcpts.map((rcpt) => ({ rcpt, f })));
    if (job.utf8 && !session.supports('SMTPUTF8')) {
      all({ permanent: true, status: '5.6.7', diagnostic: `host ${host} does not support SMTPUTF8, required for a non-ASCII address`, host });
      return 'usable';
    }
    const size = item.size - item.bodyOffset;
    if (session.maxSize && size > session.maxSize) {
      all({ permanent: true, status: '5.3.4', diagnostic: `message size ${size} exceeds the limit ${session.maxSize} of ${host}`, host });
      return 'usable';
    }
    const reused = session.messages > 0;
    const body = fileBody(item.local, item.bodyOffset);
    let result;
    try {
      result = await session.send(item.env.from, job.rcpts, body, size, item.eightBit && session.supports('8BITMIME'));
    } catch (err) {
      body.destroy();
      const e = err instanceof SmtpError ? err : new SmtpError(String(err), 0, '');
      if (e.code === 0 && reused && !job.retried) return 'retry';
      all({ permanent: e.code >= 500, status: statusOf(e.response, e.code), diagnostic: e.response || `lost connection with ${host}: ${e.message}`, host });
      return e.code !== 0 && session.usable ? 'usable' : 'closed';
    }
    this.settle(
      job,
      job.rcpts.map((rcpt) => {
        const r = result.rejected.get(rcpt);
        if (r) return { rcpt, f: { permanent: r.code >= 500, status: statusOf(r.response, r.code), diagnostic: r.response, host } };
        messagesDelivered.inc({ kind: 'remote' });
        this.logger.info({ event: 'smtp-out.sent', qid: item.qid, rcpt, host, response: result.response }, 'delivered');
        return { rcpt };
      }),
    );
    return session.usable ? 'usable' : 'closed';
  }

  /** settle - a job's recipients are through (sent, or failed with F); the last job finishes the file. */
  private settle(job: Job, results: Array<{ rcpt: string; f?: Failure }>): void {
    const { item } = job;
    const dest = job.dest;
    if (dest) {
      dest.held--;
      job.dest = undefined;
      this.unpark(dest);
    }
    for (const r of results) if (r.f) item.failed.push({ rcpt: r.rcpt, f: r.f });
    if (--item.open > 0) return;
    void this.finish(item)
      .catch((err: unknown) => this.logger.warn({ event: 'smtp-out.fail_failed', qid: item.qid, err: String(err) }, 'could not record the outcome; the lease will expire'))
      .finally(item.release);
  }

  /** finish - bounce the permanent failures (one DSN), retry the temporary ones, done the rest. */
  private async finish(item: Item): Promise<void> {
    const cfg = this.config.smtp_out;
    const age = Math.max(0, (Date.now() - Date.parse(item.env.time)) / 1000) || 0;
    const bounce: DsnRecipient[] = [];
    let retry: Array<{ rcpt: string; f: Failure }> = [];
    for (const x of item.failed) {
      if (x.f.permanent) bounce.push({ rcpt: x.rcpt, status: x.f.status, diagnostic: x.f.diagnostic, remoteMta: x.f.host?.replace(/:\d+$/, '') });
      else if (age >= cfg.max_age_s && !x.f.busy) bounce.push({ rcpt: x.rcpt, status: '5.4.7', diagnostic: `delivery time expired; last error: ${x.f.diagnostic}`, remoteMta: x.f.host?.replace(/:\d+$/, '') });
      else retry.push(x);
    }
    if (bounce.length > 0 && !(await this.bounce(item, bounce))) {
      retry = [...retry, ...bounce.map((b) => ({ rcpt: b.rcpt, f: { permanent: false, status: '4.3.0', diagnostic: `${b.diagnostic} (bounce not queued yet)` } }))];
    }
    if (retry.length === 0) {
      await this.done(item);
      return;
    }
    const busy = retry.every((x) => x.f.busy);
    const seconds = busy ? BUSY_DEFER_S : Math.ceil(Math.min(cfg.max_backoff_s, Math.max(cfg.first_retry_s, age)));
    const reason = retry[0]!.f.diagnostic.replace(/[\r\n]+/g, ' ').slice(0, 500);
    const next = new Date(Date.now() + seconds * 1000).toISOString();
    for (const x of retry) {
      if (x.f.busy) this.logger.debug({ event: 'smtp-out.busy', qid: item.qid, rcpt: x.rcpt, reason: x.f.diagnostic, seconds }, 'destination busy; back in the queue');
      else this.logger.info({ event: 'smtp-out.deferred', qid: item.qid, rcpt: x.rcpt, reason: x.f.diagnostic, seconds, next }, 'deferred');
    }
    if (!busy) messagesDeferred.inc({ kind: 'remote' });
    if (retry.length === item.env.rcpt.length) {
      const r = await this.queued.request('defer', ['outgoing', item.file, String(seconds), reason]);
      if (!r.ok) this.logger.warn({ event: 'smtp-out.defer_failed', qid: item.qid, reason: r.params[0] }, 'defer refused');
      return;
    }
    await this.requeue(item, retry.map((x) => x.rcpt), seconds, reason);
  }

  // Some recipients went, others must wait: the rest move to a new `outgoing` file (same qid)
  // that waits until `not-before`; the old file is then done. If that fails the whole file is
  // deferred instead (the sent ones may get a duplicate, never zero).
  private async requeue(item: Item, remaining: string[], seconds: number, reason: string): Promise<void> {
    const env: Envelope = { ...item.env, rcpt: remaining, extra: { ...item.env.extra, 'not-before': new Date(Date.now() + seconds * 1000).toISOString(), reason } };
    try {
      const next = await spoolMessage(this.queued, 'outgoing', env, fileBody(item.local, item.bodyOffset));
      this.logger.info({ event: 'smtp-out.requeued', qid: item.qid, slot: path.basename(next.file), remaining, seconds }, 'remaining recipients requeued');
      await this.done(item);
    } catch (err) {
      this.logger.warn({ event: 'smtp-out.requeue_failed', qid: item.qid, err: String(err) }, 'requeue failed; deferring the whole file');
      await this.queued.request('defer', ['outgoing', item.file, String(seconds), reason]);
    }
  }

  private async bounce(item: Item, failed: DsnRecipient[]): Promise<boolean> {
    try {
      const out = await queueBounce(
        { queued: this.queued, authd: this.authd, hostname: this.config.hostname, postmaster: this.config.router.postmaster, localDomains: this.config.authd.local_domains },
        item.local,
        item.env,
        item.bodyOffset,
        failed,
      );
      for (const f of failed) {
        messagesBounced.inc();
        this.logger.info(
          { event: 'smtp-out.bounced', qid: item.qid, rcpt: f.rcpt, status: f.status, reason: f.diagnostic, dsn: out.kind === 'dropped' ? null : out.qid, notify: out.kind === 'dropped' ? null : out.to },
          out.kind === 'dropped' ? `undeliverable, no bounce (${out.reason})` : 'bounced',
        );
      }
      return true;
    } catch (err) {
      this.logger.warn({ event: 'smtp-out.bounce_failed', qid: item.qid, err: String(err) }, 'could not queue the bounce; retrying later');
      return false;
    }
  }

  private async done(item: Item): Promise<void> {
    const r = await this.queued.request('done', ['outgoing', item.file]);
    if (!r.ok) this.logger.warn({ event: 'smtp-out.done_failed', qid: item.qid, reason: r.params[0] }, 'done refused');
  }
}

/** statusOf - the enhanced status code in a reply, or one derived from its basic code. */
export function statusOf(response: string, code: number): string {
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response);
  if (m) return m[1]!;
  return code >= 500 ? '5.0.0' : '4.0.0';
}

function toFailure(err: unknown): Failure {
  if (err instanceof DeliveryError) return { permanent: err.permanent, status: err.status, diagnostic: err.message };
  return { permanent: false, status: '4.4.1', diagnostic: String((err as Error)?.message ?? err) };
}
