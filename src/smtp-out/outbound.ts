// Outbound - the delivery engine of smtp-out. Named mechanisms, after Postfix's qmgr/smtp:
//   pop loop        a QueueConsumer (src/mail): alerts + a poll timer pop `outgoing` while fewer than [smtp_out]
//                   concurrency recipients are in hand
//   destinations    jobs are grouped by next hop (route, relay or the domain's MX); each has its
//                   own job list and at most destination_concurrency sessions
//   transactions    recipients of the same message for the same next hop go in one
//                   transaction (one DATA, several RCPT TO)
//   connection cache  a session that runs out of work waits connection_cache_s for more
//                   before QUIT, so mail arriving just after reuses it
//   back-off        4xx or network failure -> defer for clamp(age, first_retry_s, max_backoff_s):
//                   doubling intervals, as Postfix; age >= max_age_s -> bounce (5.4.7)
//   dead session    a cached session the peer dropped silently: the group goes again once
//                   on a fresh session instead of being deferred
//   bounce          5xx, null MX, no SMTPUTF8 for a UTF-8 envelope (5.6.7) -> DSN to the sender

import path from 'node:path';

import type { IpcClient } from '../ipc/index.js';
import type { Config } from '../config/schema.js';
import { domainOf } from '../mail/address.js';
import { queueBounce } from '../mail/bounce.js';
import { type Envelope, readEnvelopeFile } from '../mail/envelope.js';
import { QueueConsumer } from '../mail/queue-consumer.js';
import { fileBody } from '../mail/spool.js';
import { ipcClient } from '../shared/ipc-setup.js';
import type { Logger } from '../shared/log.js';
import { messagesBounced, messagesDeferred, messagesDelivered } from '../shared/metrics.js';
import { DeliveryError, type Nexthop, nexthopFor } from './nexthop.js';
import { Session, SmtpError } from './session.js';

interface Job {
  /** Frees this job's slot in the consumer once it is sent, deferred or bounced. */
  release: () => void;
  file: string;
  qid: string;
  env: Envelope;
  bodyOffset: number;
  size: number;
  rcpt: string;
  eightBit: boolean;
  /** The envelope has non-ASCII addresses: needs SMTPUTF8 (RFC 6531). */
  utf8: boolean;
  /** Already retried once on a fresh session after a cached one turned out dead. */
  retried?: boolean;
}

interface Destination {
  nexthop: Nexthop;
  jobs: Job[];
  active: number;
  idle: Array<{ session: Session; timer: NodeJS.Timeout }>;
}

interface Failure {
  permanent: boolean;
  status: string;
  diagnostic: string;
  host?: string;
}

const MAX_RCPTS_PER_TRANSACTION = 50;

export class Outbound {
  readonly queued: IpcClient;
  private readonly authd: IpcClient;
  private readonly destinations = new Map<string, Destination>();
  private readonly consumer: QueueConsumer;
  private closed = false;

  constructor(
    private config: Config,
    private readonly logger: Logger,
  ) {
    this.queued = ipcClient(config, 'queued');
    this.authd = ipcClient(config, 'authd');
    this.consumer = new QueueConsumer({
      queued: this.queued,
      queue: 'outgoing',
      concurrency: () => this.config.smtp_out.concurrency,
      pollMs: config.smtp_out.poll_s * 1000,
      logger,
      events: 'smtp-out',
      // A job keeps its slot until it is sent, deferred or bounced (see succeed/fail).
      take: (file, release) =>
        this.load(file, release).catch((err: unknown) => {
          this.logger.error({ event: 'smtp-out.load_failed', file, err: String(err) }, 'cannot load job');
          release();
        }),
    });
  }

  start(callback: string): void {
    this.consumer.start(callback);
  }

  /** reload - new routes and credentials apply to the next session; cached ones are closed. */
  reload(next: Config): void {
    this.config = next;
    for (const d of this.destinations.values()) {
      for (const i of d.idle.splice(0)) {
        clearTimeout(i.timer);
        i.session.close();
      }
    }
  }

  kick(): void {
    this.consumer.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.consumer.close(5000);
    for (const d of this.destinations.values()) {
      for (const i of d.idle.splice(0)) {
        clearTimeout(i.timer);
        i.session.close();
      }
    }
    this.queued.close();
    this.authd.close();
  }

  /** load - read a popped file and put it on its destination's job list. */
  private async load(file: string, release: () => void): Promise<void> {
    let parsed;
    try {
      parsed = await readEnvelopeFile(file);
    } catch (err) {
      const gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
      this.logger.error({ event: 'smtp-out.bad_file', qid: path.basename(file), err: String(err) }, gone ? 'queue file vanished' : 'unreadable queue file');
      if (gone) await this.queued.request('done', ['outgoing', file]).catch(() => undefined);
      else await this.queued.request('defer', ['outgoing', file, '3600', `unreadable queue file: ${String(err)}`]).catch(() => undefined);
      release();
      return;
    }
    const env = parsed.envelope;
    const rcpt = env.rcpt[0] ?? '';
    const job: Job = {
      release,
      file,
      qid: env.qid,
      env,
      bodyOffset: parsed.bodyOffset,
      size: parsed.size,
      rcpt,
      eightBit: env.extra?.['eight-bit'] === '1',
      utf8: /[^\x00-\x7f]/.test(env.from + rcpt),
    };
    const nexthop = nexthopFor(this.config.smtp_out, domainOf(rcpt));
    let dest = this.destinations.get(nexthop.key);
    if (!dest) {
      dest = { nexthop, jobs: [], active: 0, idle: [] };
      this.destinations.set(nexthop.key, dest);
    }
    dest.nexthop = nexthop; // the current configuration's credentials
    dest.jobs.push(job);
    this.schedule(dest);
  }

  // One more session only when there is more distinct work than sessions, up to the limit.
  private schedule(dest: Destination): void {
    const groups = new Set(dest.jobs.map(groupKey)).size;
    const limit = this.config.smtp_out.destination_concurrency;
    if (groups === 0 || dest.active >= limit) return;
    if (dest.active > 0 && groups <= dest.active) return;
    dest.active++;
    void this.worker(dest)
      .catch((err: unknown) => this.logger.error({ event: 'smtp-out.worker_failed', destination: dest.nexthop.key, err: String(err) }, 'worker failed'))
      .finally(() => {
        dest.active--;
        if (dest.jobs.length > 0) this.schedule(dest);
      });
  }

  /** worker - one session's life: take groups of jobs until none is left, then cache it. */
  private async worker(dest: Destination): Promise<void> {
    let session: Session | null = null;
    while (dest.jobs.length > 0 && !this.closed) {
      if (!session) session = this.cachedSession(dest);
      if (!session) {
        try {
          session = await this.openSession(dest);
        } catch (err) {
          // The destination is unreachable: every job waiting for it shares the verdict.
          const failure = toFailure(err);
          await Promise.all(dest.jobs.splice(0).map((j) => this.fail(j, failure)));
          return;
        }
      }
      const group = takeGroup(dest.jobs);
      const outcome = await this.transact(session, group);
      if (outcome === 'retry') {
        // A cached session the peer had silently closed: once more on a fresh one.
        for (const j of group) j.retried = true;
        dest.jobs.unshift(...group);
      }
      if (outcome !== 'usable') {
        session.close();
        session = null;
      }
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

  /** openSession - try the next hop's hosts in order; the last error decides. */
  private async openSession(dest: Destination): Promise<Session> {
    const hosts = await dest.nexthop.hosts();
    let last: unknown = new DeliveryError('no hosts', false, '4.4.1');
    for (const host of hosts) {
      try {
        const s = await Session.open(host, {
          hostname: this.config.hostname,
          connectTimeoutMs: this.config.smtp_out.connect_timeout_s * 1000,
          commandTimeoutMs: this.config.smtp_out.command_timeout_s * 1000,
          auth: dest.nexthop.auth,
        });
        this.logger.debug({ event: 'smtp-out.connected', host: `${host.host}:${host.port}`, tls: s.secure }, 'connected');
        return s;
      } catch (err) {
        last = err instanceof SmtpError ? new DeliveryError(`connect to ${host.host}[${host.port}]: ${err.message}`, false, '4.4.1') : err;
        this.logger.info({ event: 'smtp-out.connect_failed', host: `${host.host}:${host.port}`, err: String((last as Error).message) }, 'connect failed');
      }
    }
    throw last;
  }

  /** transact - one message to a group of recipients; says whether the session can go on. */
  private async transact(session: Session, group: Job[]): Promise<'usable' | 'closed' | 'retry'> {
    const first = group[0]!;
    const host = `${session.host.host}:${session.host.port}`;
    if (first.utf8 && !session.supports('SMTPUTF8')) {
      const f: Failure = { permanent: true, status: '5.6.7', diagnostic: `host ${host} does not support SMTPUTF8, required for a non-ASCII address`, host };
      await Promise.all(group.map((j) => this.fail(j, f)));
      return 'usable';
    }
    const size = first.size - first.bodyOffset;
    if (session.maxSize && size > session.maxSize) {
      const f: Failure = { permanent: true, status: '5.3.4', diagnostic: `message size ${size} exceeds the limit ${session.maxSize} of ${host}`, host };
      await Promise.all(group.map((j) => this.fail(j, f)));
      return 'usable';
    }
    const reused = session.messages > 0;
    const body = fileBody(first.file, first.bodyOffset);
    let result;
    try {
      result = await session.send(first.env.from, group.map((j) => j.rcpt), body, size, first.eightBit && session.supports('8BITMIME'));
    } catch (err) {
      body.destroy();
      const e = err instanceof SmtpError ? err : new SmtpError(String(err), 0, '');
      if (e.code === 0 && reused && !group.some((j) => j.retried)) return 'retry';
      const f: Failure = { permanent: e.code >= 500, status: statusOf(e.response, e.code), diagnostic: e.response || `lost connection with ${host}: ${e.message}`, host };
      await Promise.all(group.map((j) => this.fail(j, f)));
      return e.code !== 0 && session.usable ? 'usable' : 'closed';
    }
    await Promise.all(
      group.map((j) => {
        const r = result.rejected.get(j.rcpt);
        if (r) return this.fail(j, { permanent: r.code >= 500, status: statusOf(r.response, r.code), diagnostic: r.response, host });
        return this.succeed(j, host, result.response);
      }),
    );
    return session.usable ? 'usable' : 'closed';
  }

  private async succeed(job: Job, host: string, response: string): Promise<void> {
    try {
      messagesDelivered.inc({ kind: 'remote' });
      this.logger.info({ event: 'smtp-out.sent', qid: job.qid, rcpt: job.rcpt, host, response }, 'delivered');
      const r = await this.queued.request('done', ['outgoing', job.file]);
      if (!r.ok) this.logger.warn({ event: 'smtp-out.done_failed', qid: job.qid, reason: r.params[0] }, 'done refused');
    } catch (err) {
      this.logger.warn({ event: 'smtp-out.done_failed', qid: job.qid, err: String(err) }, 'done failed');
    } finally {
      job.release();
    }
  }

  /** fail - bounce a permanent failure (or an expired one), defer a temporary one. */
  private async fail(job: Job, f: Failure): Promise<void> {
    try {
      const cfg = this.config.smtp_out;
      const age = Math.max(0, (Date.now() - Date.parse(job.env.time)) / 1000) || 0;
      if (!f.permanent && age < cfg.max_age_s) {
        await this.defer(job, Math.ceil(Math.min(cfg.max_backoff_s, Math.max(cfg.first_retry_s, age))), f.diagnostic);
        return;
      }
      const status = f.permanent ? f.status : '5.4.7';
      const diagnostic = f.permanent ? f.diagnostic : `delivery time expired; last error: ${f.diagnostic}`;
      try {
        const out = await queueBounce(
          { queued: this.queued, authd: this.authd, hostname: this.config.hostname, postmaster: this.config.router.postmaster, localDomains: this.config.authd.local_domains },
          job.file,
          job.env,
          job.bodyOffset,
          [{ rcpt: job.rcpt, status, diagnostic, remoteMta: f.host?.replace(/:\d+$/, '') }],
        );
        messagesBounced.inc();
        this.logger.info(
          { event: 'smtp-out.bounced', qid: job.qid, rcpt: job.rcpt, status, reason: diagnostic, dsn: out.kind === 'dropped' ? null : out.qid, notify: out.kind === 'dropped' ? null : out.to },
          out.kind === 'dropped' ? `undeliverable, no bounce (${out.reason})` : 'bounced',
        );
      } catch (err) {
        this.logger.warn({ event: 'smtp-out.bounce_failed', qid: job.qid, err: String(err) }, 'could not queue the bounce; retrying later');
        await this.defer(job, Math.ceil(cfg.first_retry_s), `${diagnostic} (bounce not queued yet)`);
        return;
      }
      const r = await this.queued.request('done', ['outgoing', job.file]);
      if (!r.ok) this.logger.warn({ event: 'smtp-out.done_failed', qid: job.qid, reason: r.params[0] }, 'done refused');
    } catch (err) {
      this.logger.warn({ event: 'smtp-out.fail_failed', qid: job.qid, err: String(err) }, 'could not record the failure; the lease will expire');
    } finally {
      job.release();
    }
  }

  private async defer(job: Job, seconds: number, reason: string): Promise<void> {
    messagesDeferred.inc({ kind: 'remote' });
    const next = new Date(Date.now() + seconds * 1000).toISOString();
    this.logger.info({ event: 'smtp-out.deferred', qid: job.qid, rcpt: job.rcpt, reason, seconds, next }, 'deferred');
    const r = await this.queued.request('defer', ['outgoing', job.file, String(seconds), reason.replace(/[\r\n]+/g, ' ').slice(0, 500)]);
    if (!r.ok) this.logger.warn({ event: 'smtp-out.defer_failed', qid: job.qid, reason: r.params[0] }, 'defer refused');
  }
}

function groupKey(j: Job): string {
  return `${j.qid}\u0000${j.env.from}\u0000${j.size - j.bodyOffset}`;
}

/** takeGroup - the first job and every other one of the same message (up to the RCPT limit). */
function takeGroup(jobs: Job[]): Job[] {
  const key = groupKey(jobs[0]!);
  const seen = new Set<string>();
  const group: Job[] = [];
  for (let i = 0; i < jobs.length && group.length < MAX_RCPTS_PER_TRANSACTION; ) {
    const j = jobs[i]!;
    if (groupKey(j) === key && !seen.has(j.rcpt)) {
      seen.add(j.rcpt);
      group.push(j);
      jobs.splice(i, 1);
    } else {
      i++;
    }
  }
  return group;
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
