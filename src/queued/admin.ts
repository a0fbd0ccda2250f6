// Admin extension messages for `fmail queue ...` (postqueue/postsuper style). Read-only ones
// never change state; the others act on one message id or on every deferred message.

import { type IpcServer, error, multiLine, ok, rawData } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';
import { isQid, isQueueName } from './names.js';
import type { QueueBackend } from './backend.js';

export function registerAdmin(server: IpcServer, backend: QueueBackend, listLimit: number, logger: Logger): void {
  server.on('qstats', {
    params: 0,
    handle: async () =>
      multiLine(
        (await backend.stats()).map(({ name, counts: c }) => ({
          name: 'queue',
          params: [name, `ready=${c.ready}`, `leased=${c.leased}`, `deferred=${c.deferred}`, `slots=${c.slots}`],
        })),
      ),
  });

  server.on('qlist', {
    params: [0, 1],
    handle: async (ctx) => {
      const name = ctx.params[0];
      if (name !== undefined && !isQueueName(name)) return error(`bad queue name: ${name}`);
      const now = Date.now();
      const items = [];
      for (const m of await backend.list(name, listLimit)) {
        const age = Number.isNaN(m.time) ? '' : String(Math.max(0, Math.round((now - m.time) / 1000)));
        const next = m.state === 'deferred' && m.meta ? new Date(m.meta.notBefore).toISOString() : '';
        items.push({ name: 'msg', params: [m.qid, m.queue, m.state, age, String(m.size), next, String(m.meta?.attempts ?? 0), m.meta?.reason ?? ''] });
      }
      return multiLine(items);
    },
  });

  server.on('qshow', {
    params: 1,
    handle: async (ctx) => {
      const qid = ctx.params[0]!;
      if (!isQid(qid)) return error(`no such message: ${qid}`);
      try {
        const m = await backend.show(qid);
        if (!m) return error(`no such message: ${qid}`);
        return rawData(m.body, m.size);
      } catch {
        return error(`message file gone: ${qid}`);
      }
    },
  });

  server.on('qflush', {
    params: [0, 1],
    handle: async (ctx) => {
      const name = ctx.params[0];
      if (name !== undefined && !isQueueName(name)) return error(`bad queue name: ${name}`);
      const n = await backend.flush(name);
      logger.info({ event: 'queued.flush', queue: name, count: n }, 'deferred messages made ready');
      return ok(String(n));
    },
  });

  server.on('qrequeue', {
    params: 1,
    handle: async (ctx) => {
      const qid = ctx.params[0]!;
      const queue = isQid(qid) ? await backend.requeue(qid) : null;
      if (queue === null) return error(`no such message: ${qid}`);
      logger.info({ event: 'queued.requeue', qid, queue }, 'message ready again');
      return ok();
    },
  });

  server.on('qdelete', {
    params: 1,
    handle: async (ctx) => {
      const qid = ctx.params[0]!;
      const queue = isQid(qid) ? await backend.remove(qid) : null;
      if (queue === null) return error(`no such message: ${qid}`);
      logger.info({ event: 'queued.delete', qid, queue }, 'message deleted by the administrator');
      return ok();
    },
  });
}
