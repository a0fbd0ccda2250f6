// Router - pops `incoming` through a QueueConsumer (alerts and a poll timer kick it; at most
// [router] concurrency messages in hand) and hands each message to deliverMessage.

import { ANSWER_CACHE_MS, AnswerCache } from '../ipc/answer-cache.js';
import { IpcClient } from '../ipc/index.js';
import type { Config } from '../config/schema.js';
import { ipcClient, ipcClientAt } from '../shared/ipc-setup.js';
import { Mailhosts } from './mailhosts.js';
import { QueueConsumer } from '../mail/queue-consumer.js';
import { QueueFiles } from '../mail/queue-copy.js';
import { queueIsRemote } from '../mail/spool.js';
import { dataPath } from '../config/load.js';
import type { Logger } from '../shared/log.js';
import { type Clients, deliverMessage } from './deliver.js';

/** Messages up to this size come with their lease; bigger ones are read from the file (streamed). */
const TAKE_BYTES = 1024 * 1024;

export class Router {
  private readonly clients: Clients;
  private readonly consumer: QueueConsumer;
  private nextMailbox = 0;

  constructor(
    private config: Config,
    private readonly logger: Logger,
  ) {
    // mailboxd runs one `store` at a time per connection, so each worker gets its own.
    const mailboxd = Array.from({ length: config.router.concurrency }, () => ipcClient(config, 'mailboxd'));
    const queued = ipcClient(config, 'queued');
    // Not co-located: every new message (requeued remainders, bounces) goes to queued with `put`.
    if (!config.router.queue_colocated) queueIsRemote(queued);
    const authd = ipcClient(config, 'authd');
    const mailhosts = new Mailhosts(authd, (address) => ipcClientAt(config, address), config.router.concurrency);
    this.clients = {
      queued,
      files: new QueueFiles(queued, config.router.queue_colocated ? null : dataPath(config, 'router/queue-copies')),
      authd,
      resolved: new AnswerCache(authd, ANSWER_CACHE_MS),
      smtpOut: ipcClient(config, 'smtp_out'),
      mailboxd: () => mailboxd[this.nextMailbox++ % mailboxd.length]!,
      mailboxdFor: async (user) => {
        const host = await mailhosts.hostOf(user);
        return host ? mailhosts.client(host) : this.clients.mailboxd();
      },
      all: () => [this.clients.queued, this.clients.authd, this.clients.smtpOut, ...mailboxd, ...mailhosts.all()],
    };
    this.consumer = new QueueConsumer({
      queued: this.clients.queued,
      queue: 'incoming',
      concurrency: () => this.config.router.concurrency,
      pollMs: config.router.poll_s * 1000,
      logger,
      events: 'router',
      // The bytes come with the lease (`take`): no file is written or read for a message.
      withBytes: TAKE_BYTES,
      take: async (file, release, _unslot, data) => {
        void deliverMessage(this.config, this.logger, this.clients, file, data)
          .catch((err: unknown) => this.logger.error({ event: 'router.failed', file, err: String(err) }, 'message handling failed'))
          .finally(release);
      },
    });
  }

  /** start - subscribe with our callback address, drain now and on every tick. */
  start(callback: string): void {
    this.consumer.start(callback);
  }

  reload(next: Config): void {
    this.config = next;
  }

  /** kick - something may be waiting in `incoming`: drain (or drain again when done). */
  kick(): void {
    this.consumer.kick();
  }

  async close(): Promise<void> {
    await this.consumer.close(10_000);
    for (const c of this.clients.all()) c.close();
  }
}

export type { IpcClient };
