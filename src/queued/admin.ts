// Admin extension messages for `fmail queue ...` (postqueue/postsuper style). Read-only ones
// never change state; the others act on one message id or on every deferred message.

import { createReadStream, promises as fsp } from 'node:fs';

import { type IpcServer, error, multiLine, ok, rawData } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';
import { isQid, isQueueName } from './names.js';
import type { Spool } from './spool.js';

export function registerAdmin(server: IpcServer, spool: Spool, listLimit: number, logger: Logger): void {
  server.on('qstats', {
    params: 0,
    handle: () =>
      multiLine(
        spool.all().map((q) => {
          const c = q.counts();
          return { name: 'queue', params: [q.name, `ready=${c.ready}`, `leased=${c.leased}`, `deferred=${c.deferred}`, `slots=${c.slots}`] };
        }),
      ),
  });

  server.on('qlist', {
    params: [0, 1],
    handle: async (ctx) => {
      const name = ctx.params[0];
      if (name !== undefined && !isQueueName(name)) return error(`bad queue name: ${name}`);
      const queues = name === undefined ? spool.all() : [spool.peek(name)].filter((q) => q !== undefined);
      const now = Date.now();
      const items = [];
      for (const q of queues) {
        for (const m of await q.list(listLimit)) {
          const age = Number.isNaN(m.time) ? '' : String(Math.max(0, Math.round((now - m.time) / 1000)));
          const next = m.state === 'deferred' && m.meta ? new Date(m.meta.notBefore).toISOString() : '';
          items.push({ name: 'msg', params: [m.qid, m.queue, m.state, age, String(m.size), next, String(m.meta?.attempts ?? 0), m.meta?.reason ?? ''] });
        }
      }
      return multiLine(items);
    },
  });

  server.on('qshow', {
    params: 1,
    handle: async (ctx) => {
      const qid = ctx.params[0]!;
      const q = isQid(qid) ? spool.find(qid) : null;
      if (!q) return error(`no such message: ${qid}`);
      const file = q.filePath(qid);
      try {
        const st = await fsp.stat(file);
        if (st.size === 0) return rawData(Buffer.alloc(0));
        return rawData(createReadStream(file, { start: 0, end: st.size - 1 }), st.size);
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
      let n = 0;
      for (const q of spool.all()) if (name === undefined || q.name === name) n += await q.flush();
      logger.info({ event: 'queued.flush', queue: name, count: n }, 'deferred messages made ready');
      return ok(String(n));
    },
  });

  server.on('qrequeue', {
    params: 1,
    handle: async (ctx) => {
      const qid = ctx.params[0]!;
      const q = isQid(qid) ? spool.find(qid) : null;
      if (!q || !(await q.requeue(qid))) return error(`no such message: ${qid}`);
      logger.info({ event: 'queued.requeue', qid, queue: q.name }, 'message ready again');
      return ok();
    },
  });

  server.on('qdelete', {
    params: 1,
    handle: async (ctx) => {
      const qid = ctx.params[0]!;
      const q = isQid(qid) ? spool.find(qid) : null;
      if (!q || !(await q.remove(qid))) return error(`no such message: ${qid}`);
      logger.info({ event: 'queued.delete', qid, queue: q.name }, 'message deleted by the administrator');
      return ok();
    },
  });
}
