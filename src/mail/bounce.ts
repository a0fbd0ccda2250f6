// Bounces: who gets the DSN for a failed message, and queueing it into `incoming` so the router
// delivers it like any mail (envelope sender <>). Rules, as Postfix:
//   - sender present        -> DSN to the sender (envelope extra `dsn: bounce`)
//   - sender <> and the mail is one of our bounces -> "double bounce" to postmaster (`dsn: double`)
//   - anything else with sender <> (a failed double bounce, a stranger's bounce) -> dropped, logged
// Never a DSN to <>, so bounces cannot loop.

import { open } from 'node:fs/promises';

import type { IpcClient } from '../ipc/index.js';
import { domainOf } from './address.js';
import { type DsnRecipient, buildDsn, headerBlock } from './dsn.js';
import type { Envelope } from './envelope.js';
import { derivedQueueId } from './queue-id.js';
import { spoolMessage } from './spool.js';

export type BounceOutcome = { kind: 'bounce' | 'double'; to: string; qid: string } | { kind: 'dropped'; reason: string };

export interface BounceContext {
  queued: IpcClient;
  authd: IpcClient;
  hostname: string;
  /** Configured postmaster address ('' = find one). */
  postmaster: string;
  /** Extra local domains from the configuration, tried after the host name's domains. */
  localDomains: string[];
}

/** queueBounce - send a DSN about `failed` recipients of the message in `file`; throws when it could not be queued. */
export async function queueBounce(ctx: BounceContext, file: string | Buffer, env: Envelope, bodyOffset: number, failed: DsnRecipient[]): Promise<BounceOutcome> {
  let to: string;
  let kind: 'bounce' | 'double';
  if (env.from !== '') {
    to = env.from;
    kind = 'bounce';
  } else if (env.extra?.dsn === 'bounce') {
    const pm = await postmasterAddress(ctx, failed.map((f) => domainOf(f.rcpt)));
    if (!pm) return { kind: 'dropped', reason: 'double bounce: no postmaster address' };
    to = pm;
    kind = 'double';
  } else {
    return { kind: 'dropped', reason: env.extra?.dsn === 'double' ? 'undeliverable double bounce' : 'null sender' };
  }
  const headers = await readHeaders(file, bodyOffset);
  const body = buildDsn({ hostname: ctx.hostname, qid: env.qid, to, arrival: env.time, recipients: failed, headers });
  // Same message, same failed recipients -> same qid: a bounce queued again after a crash is
  // recognised by mailboxd (exactly-once local delivery) instead of stored twice.
  const bounceQid = derivedQueueId('bounce', env.qid, kind, ...failed.map((f) => f.rcpt).sort());
  const bounceEnv: Envelope = {
    qid: bounceQid,
    from: '',
    rcpt: [to],
    client: '',
    helo: '',
    auth: '',
    time: new Date().toISOString(),
    extra: { dsn: kind, 'dsn-for': env.qid },
  };
  const { qid } = await spoolMessage(ctx.queued, 'incoming', bounceEnv, body);
  return { kind, to, qid };
}

/**
 * postmasterAddress - configured, else postmaster@ the first local domain among: the host
 * name and its parents, `hints` (e.g. the failed recipients' domains), the configured list.
 */
export async function postmasterAddress(ctx: Pick<BounceContext, 'authd' | 'hostname' | 'postmaster' | 'localDomains'>, hints: string[] = []): Promise<string | null> {
  if (ctx.postmaster) return ctx.postmaster;
  const labels = ctx.hostname.toLowerCase().split('.');
  const candidates: string[] = [];
  for (let i = 0; i < labels.length - 1; i++) candidates.push(labels.slice(i).join('.'));
  candidates.push(...hints.filter((h) => h !== ''));
  for (const d of [...new Set(candidates)]) {
    const r = await ctx.authd.request('domain', [d]).catch(() => null);
    if (r?.ok) return `postmaster@${d}`;
  }
  const first = ctx.localDomains[0];
  return first ? `postmaster@${domainOf('x@' + first)}` : null;
}

async function readHeaders(file: string | Buffer, bodyOffset: number): Promise<Buffer> {
  // The whole queue file already in memory (the router took it with `take`).
  if (Buffer.isBuffer(file)) return headerBlock(file.subarray(bodyOffset, bodyOffset + 64 * 1024));
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, bodyOffset);
    return headerBlock(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}
