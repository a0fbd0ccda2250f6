// accept - the `send: FROM ; TO ; SLOT` handler: take responsibility for remote recipients of a
// queued message by writing them, with their own envelope, into the `outgoing` queue. `ok` is
// answered only after queued holds that file durably, so the caller may then `done` its file.
//
// One message, one copy ("batching"): the `send`s for the same SLOT and FROM that arrive
// together (the router sends every remote recipient of a message at once, pipelined) are
// gathered until the end of the event-loop turn and written as ONE `outgoing` file per
// destination (next hop), every recipient on its envelope. The message is read once and its
// 8-bit scan done once; outbound.ts then delivers that file in one SMTP transaction.
//
// Accepted once ("recent accepts"): the (qid, sender, recipient) of every copy made in the last
// hour is remembered (up to 100,000). A router that crashed after our `ok` but before its
// `done` sends the same recipient again: it gets `ok` without a second copy, so the remote
// recipient is not sent the message twice. (Forgotten if smtp-out itself restarts.)

import path from 'node:path';
import { Readable } from 'node:stream';

import type { IpcClient, Reply } from '../ipc/index.js';
import { errnoStatus, errorStatus, failure, ok } from '../ipc/index.js';
import { domainOf, normalizeAddress } from '../mail/address.js';
import { type Envelope, readEnvelopeFile } from '../mail/envelope.js';
import type { QueueFiles } from '../mail/queue-copy.js';
import { SpoolError, fileBody, spoolMessage } from '../mail/spool.js';
import type { Logger } from '../shared/log.js';

/** Recipients in one `outgoing` file: one SMTP transaction's worth (as Postfix's default 50). */
export const MAX_RCPTS_PER_FILE = 50;
const RECENT_MS = 3600_000;
const RECENT_MAX = 100_000;

export interface AcceptDeps {
  queued: IpcClient;
  /**
   * The queued spool folder when co-located: SLOT must lie inside it (smtp-out reads no other
   * file). null when not: SLOT is fetched with `get: incoming ; SLOT`, which queued refuses for
   * anything but one of its messages.
   */
  spoolDir: string | null;
  /** Reads SLOT on this host (in place, or a copy fetched from queued). */
  files: QueueFiles;
  logger: Logger;
  /** The destination (next-hop key) of a domain under the current configuration. */
  destination(domain: string): string;
  /** Bytes to put on top of the copies (recorded check results, DKIM signatures); see outgoing-head.ts. */
  head?: (src: Envelope, file: string, bodyOffset: number) => Promise<Buffer>;
}

interface Batch {
  file: string;
  from: string;
  /** Recipient -> the `send` requests waiting for it (the same one twice shares the answer). */
  rcpts: Map<string, Array<(r: Reply) => void>>;
}

export class Acceptor {
  private readonly batches = new Map<string, Batch>();
  /** `qid \0 from \0 rcpt` -> when its copy was made (insertion order = age order). */
  private readonly recent = new Map<string, number>();

  constructor(private readonly deps: AcceptDeps) {}

  /** send - check one `send` request and join it to its message's batch; the reply to it. */
  send(fromParam: string, toParam: string, slot: string): Promise<Reply> {
    const from = fromParam === '<>' ? '' : normalizeAddress(fromParam);
    const to = normalizeAddress(toParam);
    if (!domainOf(to) || /[\s<>]/.test(to)) return Promise.resolve(failure('5.1.3', `bad recipient ${JSON.stringify(toParam)}`));
    if (/[\s<>]/.test(from)) return Promise.resolve(failure('5.1.7', `bad sender ${JSON.stringify(fromParam)}`));
    const file = path.resolve(slot);
    if (this.deps.spoolDir !== null && !file.startsWith(path.resolve(this.deps.spoolDir) + path.sep)) return Promise.resolve(failure('5.5.4', 'slot is not a queue file'));
    const key = `${file}\u0000${from}`;
    let batch = this.batches.get(key);
    if (!batch) {
      const b: Batch = { file, from, rcpts: new Map() };
      batch = b;
      this.batches.set(key, b);
      // Every request already read from the socket joins before the batch is written.
      setImmediate(() => {
        this.batches.delete(key);
        void this.write(b);
      });
    }
    const waiting = batch.rcpts.get(to) ?? [];
    batch.rcpts.set(to, waiting);
    return new Promise<Reply>((resolve) => waiting.push(resolve));
  }

  private isRecent(key: string): boolean {
    const at = this.recent.get(key);
    return at !== undefined && Date.now() - at < RECENT_MS;
  }

  private remember(key: string): void {
    const now = Date.now();
    this.recent.delete(key);
    this.recent.set(key, now);
    for (const [k, at] of this.recent) {
      if (this.recent.size <= RECENT_MAX && now - at < RECENT_MS) break;
      this.recent.delete(k);
    }
  }

  /** write - one `outgoing` file per destination (and per 50 recipients) for a whole batch. */
  private async write(b: Batch): Promise<void> {
    let local;
    try {
      local = await this.deps.files.local('incoming', b.file);
    } catch (err) {
      const r = failure((err as NodeJS.ErrnoException).code === 'ENOENT' ? '5.5.4' : '4.3.0', `cannot read slot: ${(err as Error).message}`);
      for (const ws of b.rcpts.values()) for (const w of ws) w(r);
      return;
    }
    try {
      await this.writeFrom(b, local.file);
    } finally {
      await local.drop();
    }
  }

  private async writeFrom(b: Batch, file: string): Promise<void> {
    const answer = (rcpts: string[], r: Reply): void => {
      for (const rcpt of rcpts) for (const w of b.rcpts.get(rcpt) ?? []) w(r);
    };
    let parsed;
    try {
      parsed = await readEnvelopeFile(file);
    } catch (err) {
      answer([...b.rcpts.keys()], failure('4.3.0', `cannot read slot: ${(err as Error).message}`));
      return;
    }
    const src = parsed.envelope;
    const fresh = [...b.rcpts.keys()].filter((rcpt) => {
      if (!this.isRecent(`${src.qid}\u0000${b.from}\u0000${rcpt}`)) return true;
      this.deps.logger.info({ event: 'smtp-out.already_queued', qid: src.qid, rcpt }, 'accepted before (sent again after a crash): no second copy');
      answer([rcpt], ok());
      return false;
    });
    if (fresh.length === 0) return;
    const extra: Record<string, string> = {};
    if (src.extra?.dsn) extra.dsn = src.extra.dsn;
    let eightBit = false;
    try {
      eightBit = await hasEightBit(file, parsed.bodyOffset);
    } catch (err) {
      answer([...b.rcpts.keys()], failure('4.3.0', `cannot read slot: ${(err as Error).message}`));
      return;
    }
    if (eightBit) extra['eight-bit'] = '1';
    // Signed once per message, whatever the number of copies.
    const top = this.deps.head ? await this.deps.head(src, file, parsed.bodyOffset) : Buffer.alloc(0);
    const groups = new Map<string, string[]>();
    for (const rcpt of fresh) {
      const dest = this.deps.destination(domainOf(rcpt));
      const g = groups.get(dest) ?? [];
      groups.set(dest, g);
      g.push(rcpt);
    }
    const files: string[][] = [];
    for (const g of groups.values()) for (let i = 0; i < g.length; i += MAX_RCPTS_PER_FILE) files.push(g.slice(i, i + MAX_RCPTS_PER_FILE));
    await Promise.all(
      files.map(async (rcpts) => {
        const env: Envelope = {
          qid: src.qid,
          from: b.from,
          rcpt: rcpts,
          client: src.client,
          helo: src.helo,
          auth: src.auth,
          time: src.time || new Date().toISOString(),
          extra,
        };
        try {
          const body = top.length ? withTop(top, file, parsed.bodyOffset) : fileBody(file, parsed.bodyOffset);
          const copy = await spoolMessage(this.deps.queued, 'outgoing', env, body);
          for (const rcpt of rcpts) {
            this.remember(`${src.qid}\u0000${b.from}\u0000${rcpt}`);
            this.deps.logger.info({ event: 'smtp-out.queued', qid: src.qid, rcpt, from: b.from, slot: path.basename(copy.file), nrcpt: rcpts.length }, 'queued for remote delivery');
          }
          answer(rcpts, ok());
        } catch (err) {
          this.deps.logger.warn({ event: 'smtp-out.accept_failed', qid: src.qid, rcpts, err: String(err) }, 'cannot queue for delivery');
          // queued's own code when it gave one (4.3.1: its disk is full), else from the errno.
          const status = err instanceof SpoolError ? errorStatus(err.reason).status : errnoStatus(err);
          answer(rcpts, failure(status.startsWith('4.') ? status : '4.3.0', `cannot queue: ${(err as Error).message}`));
        }
      }),
    );
  }
}

function withTop(top: Buffer, file: string, offset: number): Readable {
  return Readable.from(
    (async function* () {
      yield top;
      yield* fileBody(file, offset);
    })(),
  );
}

/** hasEightBit - does the message contain bytes above 127 (decides BODY=8BITMIME)? */
async function hasEightBit(file: string, offset: number): Promise<boolean> {
  for await (const chunk of fileBody(file, offset)) {
    const buf = chunk as Buffer;
    for (let i = 0; i < buf.length; i++) if (buf[i]! > 127) return true;
  }
  return false;
}
