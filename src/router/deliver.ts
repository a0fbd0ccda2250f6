// deliverMessage - one popped `incoming` file: every recipient handed over, bounced, or the
// message deferred. Outcomes per recipient:
//   ok   - stored in every mailbox it resolves to, or accepted by smtp-out
//   temp - try again later (a server unreachable, a 4xx-like answer)
//   perm - bounce (unknown user of a local domain, quota, too big)

import path from 'node:path';
import { Readable } from 'node:stream';

import type { AnswerCache } from '../ipc/answer-cache.js';
import { type IpcClient, errorStatus } from '../ipc/index.js';
import type { Config } from '../config/schema.js';
import { domainOf } from '../mail/address.js';
import { prependOf } from '../mail/auth/prepend.js';
import { queueBounce } from '../mail/bounce.js';
import type { DsnRecipient } from '../mail/dsn.js';
import { type Envelope, parseEnvelope, readQueueFile } from '../mail/envelope.js';
import type { QueueFiles } from '../mail/queue-copy.js';
import { fileBody, spoolMessage } from '../mail/spool.js';
import type { Logger } from '../shared/log.js';
import { messagesBounced, messagesDeferred, messagesDelivered } from '../shared/metrics.js';

export interface Clients {
  queued: IpcClient;
  authd: IpcClient;
  /** authd's recent `resolve` answers (an ok answer kept ANSWER_CACHE_MS); authd itself when absent. */
  resolved?: AnswerCache;
  smtpOut: IpcClient;
  /** Reads popped messages: in place when co-located with queued, else a copy fetched with `get`. */
  files: QueueFiles;
  mailboxd(): IpcClient;
  /** The mailboxd that stores USER's mail (its mailbox host, else mailboxd()). */
  mailboxdFor(user: string): Promise<IpcClient>;
  all(): IpcClient[];
}

type Outcome = { rcpt: string; kind: 'ok' } | { rcpt: string; kind: 'temp' | 'perm'; status: string; diagnostic: string };

interface Job {
  config: Config;
  logger: Logger;
  clients: Clients;
  /** The PATH queued handed out (for done, defer, send). */
  file: string;
  /** Where its bytes are read on this host (FILE itself when co-located); null: DATA holds them all. */
  local: string | null;
  qid: string;
  env: Envelope;
  bodyOffset: number;
  size: number;
  /** The whole file when it is small (read once, stored from memory). */
  data: Buffer | null;
  /** Mailboxes that already got this message (an alias and its target named together: one copy). */
  stored: Set<string>;
}

/**
 * deliverMessage - hand over, bounce or defer everything in one queue file. DATA: its bytes,
 * when queued handed them over with the lease (`take`); then no file is read.
 */
export async function deliverMessage(config: Config, logger: Logger, clients: Clients, file: string, data: Buffer | null = null): Promise<void> {
  const qid = path.basename(file);
  if (data) return deliverLocal(config, logger, clients, file, null, qid, data);
  let local;
  try {
    local = await clients.files.local('incoming', file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      logger.warn({ event: 'router.vanished', qid, file, err: String(err) }, 'queued no longer has the message');
      await clients.queued.request('done', ['incoming', file]).catch(() => undefined);
      return;
    }
    // queued unreachable or failing: the lease runs out and the message comes back.
    logger.warn({ event: 'router.get_failed', qid, err: String(err) }, 'cannot fetch the message from queued');
    return;
  }
  try {
    await deliverLocal(config, logger, clients, file, local.file, qid);
  } finally {
    await local.drop();
  }
}

// deliverLocal - parse the envelope (from DATA when taken with the lease, else from LOCALFILE), then deliver.
async function deliverLocal(config: Config, logger: Logger, clients: Clients, file: string, localFile: string | null, qid: string, data: Buffer | null = null): Promise<void> {
  let parsed;
  try {
    parsed = data ? { ...parseEnvelope(data), size: data.length, data } : await readQueueFile(localFile!);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      logger.warn({ event: 'router.vanished', qid, file }, 'queue file vanished');
      await clients.queued.request('done', ['incoming', file]).catch(() => undefined);
      return;
    }
    // Not ours to delete: keep it where an administrator sees it (`fmail queue list`).
    logger.error({ event: 'router.bad_file', qid, err: String(err) }, 'unreadable queue file; deferred');
    await clients.queued.request('defer', ['incoming', file, '3600', `unreadable queue file: ${String(err)}`]).catch(() => undefined);
    return;
  }
  await deliverParsed({ config, logger, clients, file, local: localFile, qid: parsed.envelope.qid || qid, env: parsed.envelope, bodyOffset: parsed.bodyOffset, size: parsed.size, data: parsed.data, stored: new Set() });
}

async function deliverParsed(job: Job): Promise<void> {
  const { config, env } = job;

  // A requeued remainder waits out its back-off here (see requeue()).
  const notBefore = Date.parse(env.extra?.['not-before'] ?? '');
  if (notBefore > Date.now()) {
    const wait = Math.ceil((notBefore - Date.now()) / 1000);
    await defer(job, wait, env.extra?.reason ?? 'waiting for retry');
    return;
  }

  // Local recipients one after another (an alias and its target share one copy); remote ones
  // all at once, so smtp-out gets them together and makes one copy per destination.
  const outcomes: Outcome[] = [];
  const remote: string[] = [];
  for (const rcpt of env.rcpt) {
    const o = await deliverRecipient(job, rcpt);
    if (o === 'remote') remote.push(rcpt);
    else outcomes.push(o);
  }
  outcomes.push(...(await Promise.all(remote.map((rcpt) => relay(job, rcpt)))));

  const temp = outcomes.filter((o) => o.kind === 'temp') as Extract<Outcome, { kind: 'temp' | 'perm' }>[];
  const perm = outcomes.filter((o) => o.kind === 'perm') as Extract<Outcome, { kind: 'temp' | 'perm' }>[];
  const age = (Date.now() - Date.parse(env.time || new Date().toISOString())) / 1000;
  const expired = temp.length > 0 && age >= config.router.max_age_s;
  const failed: DsnRecipient[] = perm.map((o) => ({ rcpt: o.rcpt, status: o.status, diagnostic: o.diagnostic }));
  if (expired) {
    for (const o of temp) failed.push({ rcpt: o.rcpt, status: '5.4.7', diagnostic: `delivery time expired; last error: ${o.diagnostic}` });
  }
  let retry = temp;
  if (failed.length > 0) {
    if (!(await bounce(job, failed))) retry = [...temp, ...perm]; // they fail again and bounce then
    else if (expired) retry = [];
  }

  if (retry.length === 0) {
    await finish(job);
    return;
  }
  const delay = Math.ceil(Math.min(config.router.max_retry_s, Math.max(config.router.retry_s, age)));
  const reason = retry[0]!.diagnostic;
  if (retry.length === env.rcpt.length) {
    await defer(job, delay, reason);
    return;
  }
  await requeue(job, retry.map((o) => o.rcpt), delay, reason);
}

/** deliverRecipient - resolve one recipient and store it locally; 'remote' is for smtp-out. */
async function deliverRecipient(job: Job, rcpt: string): Promise<Outcome | 'remote'> {
  const { clients, logger, qid } = job;
  const domain = domainOf(rcpt);
  if (!domain) return { rcpt, kind: 'perm', status: '5.1.3', diagnostic: `bad recipient address syntax: ${rcpt}` };
  let resolved;
  try {
    resolved = await (clients.resolved ?? clients.authd).request('resolve', [rcpt]);
  } catch (err) {
    return { rcpt, kind: 'temp', status: '4.4.3', diagnostic: `authd unavailable: ${(err as Error).message}` };
  }
  if (resolved.ok) {
    const users = resolved.params.filter((u) => u !== '');
    if (users.length === 0) return { rcpt, kind: 'perm', status: '5.1.1', diagnostic: `${rcpt}: no mailbox` };
    for (const user of users) {
      if (job.stored.has(user)) continue;
      const r = await storeLocal(job, user, rcpt);
      if (r.kind !== 'ok') return r;
      job.stored.add(user);
      logger.info({ event: 'router.delivered', qid, rcpt, user }, 'delivered to mailbox');
      messagesDelivered.inc({ kind: 'local' });
    }
    return { rcpt, kind: 'ok' };
  }
  let local;
  try {
    local = await clients.authd.request('domain', [domain]);
  } catch (err) {
    return { rcpt, kind: 'temp', status: '4.4.3', diagnostic: `authd unavailable: ${(err as Error).message}` };
  }
  if (local.ok) return { rcpt, kind: 'perm', status: '5.1.1', diagnostic: `550 5.1.1 <${rcpt}>: Recipient address rejected: User unknown` };
  return 'remote';
}

/** bodyOf - the message body (after the envelope): from memory, else from the file. */
function bodyOf(job: Job): Buffer | Readable {
  return job.data ? job.data.subarray(job.bodyOffset) : fileBody(job.local!, job.bodyOffset);
}

/** relay - hand a remote recipient to smtp-out (`ok` = it has its own durable copy). */
async function relay(job: Job, rcpt: string): Promise<Outcome> {
  const { clients, logger, qid } = job;
  try {
    // Taken with its bytes, the message has no file at PATH yet: smtp-out may read PATH.
    if (job.local === null) {
      const c = await clients.queued.request('copy', ['incoming', job.file]);
      if (!c.ok) return classifyError(rcpt, 'queued', c.params[0] ?? '');
    }
    const r = await clients.smtpOut.request('send', [job.env.from, rcpt, job.file]);
    if (!r.ok) return classifyError(rcpt, 'smtp-out', r.params[0] ?? '');
  } catch (err) {
    return { rcpt, kind: 'temp', status: '4.4.3', diagnostic: `smtp-out unavailable: ${(err as Error).message}` };
  }
  logger.info({ event: 'router.relayed', qid, rcpt }, 'handed to smtp-out');
  return { rcpt, kind: 'ok' };
}

/** storeLocal - mailboxd `store` of Return-Path + the message, streamed from the queue file. */
async function storeLocal(job: Job, user: string, rcpt: string): Promise<Outcome> {
  // Return-Path, then smtpd's check results (Authentication-Results) recorded in the envelope.
  const head = Buffer.concat([Buffer.from(`Return-Path: <${job.env.from}>\r\n`, 'utf8'), prependOf(job.env)]);
  const length = head.length + job.size - job.bodyOffset;
  const data = job.data;
  // Taken whole from queued: the pieces as they are, in one round trip; else streamed from the file.
  const body = data
    ? [head, data.subarray(job.bodyOffset)]
    : Readable.from(
        (async function* () {
          yield head;
          yield* bodyOf(job);
        })(),
      );
  try {
    // The qid makes the store idempotent: after a crash before `done`, mailboxd recognises the
    // (qid, recipient) it already stored and answers `ok` without a second copy.
    const mailboxd = await job.clients.mailboxdFor(user);
    const params = [user, rcpt, String(length), job.qid];
    const r = Array.isArray(body) ? await mailboxd.storeNow('store', params, body) : await mailboxd.store('store', params, body, length);
    if (r.ok) return { rcpt, kind: 'ok' };
    return classifyError(rcpt, 'mailboxd', r.params[0] ?? '');
  } catch (err) {
    if (!Array.isArray(body)) body.destroy();
    return { rcpt, kind: 'temp', status: '4.4.3', diagnostic: `mailboxd unavailable: ${(err as Error).message}` };
  }
}

/**
 * classifyError - a refusal by mailboxd or smtp-out, decided by its enhanced status code
 * (`error: 5.2.2 quota exceeded`): class 5 bounces, class 4 (or no code) is tried again.
 */
export function classifyError(rcpt: string, server: string, message: string): Outcome {
  const e = errorStatus(message || 'refused');
  const basic = e.status.startsWith('5.2') || e.status.startsWith('5.3') ? 552 : 550;
  if (e.permanent) return { rcpt, kind: 'perm', status: e.status, diagnostic: `${basic} ${e.status} ${server}: ${e.text}` };
  return { rcpt, kind: 'temp', status: e.status, diagnostic: `${server}: ${message || 'refused'}` };
}

async function bounce(job: Job, failed: DsnRecipient[]): Promise<boolean> {
  const { config, clients, logger, qid } = job;
  try {
    const out = await queueBounce(
      { queued: clients.queued, authd: clients.authd, hostname: config.hostname, postmaster: config.router.postmaster, localDomains: config.authd.local_domains },
      job.data ?? job.local!,
      job.env,
      job.bodyOffset,
      failed,
    );
    for (const f of failed) {
      messagesBounced.inc();
      logger.info({ event: 'router.bounced', qid, rcpt: f.rcpt, status: f.status, reason: f.diagnostic, dsn: out.kind === 'dropped' ? null : out.qid, notify: out.kind === 'dropped' ? null : out.to }, out.kind === 'dropped' ? `undeliverable, no bounce (${out.reason})` : 'bounced');
    }
    return true;
  } catch (err) {
    logger.warn({ event: 'router.bounce_failed', qid, err: String(err) }, 'could not queue the bounce; retrying later');
    return false;
  }
}

async function finish(job: Job): Promise<void> {
  const r = await job.clients.queued.request('done', ['incoming', job.file]);
  if (!r.ok) job.logger.warn({ event: 'router.done_failed', qid: job.qid, reason: r.params[0] }, 'done refused');
}

async function defer(job: Job, seconds: number, reason: string): Promise<void> {
  messagesDeferred.inc({ kind: 'local' });
  job.logger.info({ event: 'router.deferred', qid: job.qid, reason, seconds }, 'deferred');
  const r = await job.clients.queued.request('defer', ['incoming', job.file, String(seconds), reason.slice(0, 500)]);
  if (!r.ok) job.logger.warn({ event: 'router.defer_failed', qid: job.qid, reason: r.params[0] }, 'defer refused');
}

// Some recipients went, others must wait: the rest move to a new slot (same qid in the
// envelope, for tracing) that waits until `not-before`; the old file is then done. If that
// fails the whole message is deferred instead (the done ones may get a duplicate, never zero).
async function requeue(job: Job, remaining: string[], delay: number, reason: string): Promise<void> {
  const env: Envelope = {
    ...job.env,
    rcpt: remaining,
    extra: { ...job.env.extra, 'not-before': new Date(Date.now() + delay * 1000).toISOString(), reason: reason.slice(0, 500) },
  };
  try {
    const next = await spoolMessage(job.clients.queued, 'incoming', env, bodyOf(job));
    job.logger.info({ event: 'router.requeued', qid: job.qid, slot: next.qid, remaining, seconds: delay, reason }, 'remaining recipients requeued');
    messagesDeferred.inc({ kind: 'local' });
    await finish(job);
  } catch (err) {
    job.logger.warn({ event: 'router.requeue_failed', qid: job.qid, err: String(err) }, 'requeue failed; deferring the whole message');
    await defer(job, delay, reason);
  }
}

