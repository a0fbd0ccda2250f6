// Stand-ins for authd and mailboxd, speaking the real IPC protocol (DESIGN.md), so pop3d can
// be tested alone: fixed users and passwords; an in-memory mailbox with per-connection numbers.

import { type IpcServer, error, multiLine, ok, rawData } from '../../src/ipc/index.js';
import type { Config } from '../../src/config/schema.js';
import { canonicalUser } from '../../src/mail/address.js';
import { createIpcServer } from '../../src/shared/ipc-setup.js';
import { silentLogger } from '../../src/shared/log.js';

export interface FakeMessage {
  uid: string;
  data: Buffer;
}

export interface Fakes {
  authd: IpcServer;
  mailboxd: IpcServer;
  /** The current (undeleted) messages of each user, in arrival order. */
  boxes: Map<string, FakeMessage[]>;
  /** A new fake mailboxd on the same address (after mailboxd.close()). */
  restartMailboxd(): Promise<void>;
  add(user: string, data: Buffer | string): FakeMessage;
  /** Every `auth` seen: [user, password, client-ip]. */
  auths: string[][];
  deles: string[][];
  close(): Promise<void>;
}

let uidCounter = 1;

export async function startFakes(config: Config, users: Record<string, string>): Promise<Fakes> {
  const logger = silentLogger();
  const boxes = new Map<string, FakeMessage[]>();
  const auths: string[][] = [];
  const deles: string[][] = [];

  const authd = createIpcServer(config, 'authd', logger);
  authd.on('auth', {
    params: [2, 3],
    handle: (ctx) => {
      auths.push([...ctx.params]);
      const user = canonicalUser(ctx.params[0]!);
      return users[user] !== undefined && users[user] === ctx.params[1] ? ok(user) : error('authentication failed');
    },
  });
  await authd.listen(config.ipc.authd);

  const makeMailboxd = async (): Promise<IpcServer> => {
    const mailboxd = createIpcServer(config, 'mailboxd', logger);
    type Snapshot = { user: string; msgs: FakeMessage[] };
    const snapshot = (conn: { data: Map<string, unknown> }, user: string): FakeMessage[] | undefined => {
      const s = conn.data.get('snapshot') as Snapshot | undefined;
      return s && s.user === user ? s.msgs : undefined;
  };
    const live = (user: string, m: FakeMessage | undefined): boolean => !!m && (boxes.get(user) ?? []).includes(m);
    mailboxd.on('list', {
      params: 1,
      handle: (ctx) => {
        const user = canonicalUser(ctx.params[0]!);
        if (!users[user]) return error(`unknown user ${user}`);
        const msgs = [...(boxes.get(user) ?? [])];
        ctx.conn.data.set('snapshot', { user, msgs });
        return multiLine(msgs.map((m, i) => ({ name: 'mailinfo', params: [String(i + 1), String(m.data.length), m.uid] })));
      },
    });
    mailboxd.on('retr', {
      params: 2,
      handle: (ctx) => {
        const user = canonicalUser(ctx.params[0]!);
        const m = snapshot(ctx.conn, user)?.[Number(ctx.params[1]) - 1];
        return m && live(user, m) ? rawData(m.data) : error('no such message');
      },
    });
    mailboxd.on('dele', {
      params: 2,
      handle: (ctx) => {
        deles.push([...ctx.params]);
        const user = canonicalUser(ctx.params[0]!);
        const m = snapshot(ctx.conn, user)?.[Number(ctx.params[1]) - 1];
        if (!m || !live(user, m)) return error('no such message');
        boxes.set(user, boxes.get(user)!.filter((x) => x !== m));
        return ok();
      },
    });
    await mailboxd.listen(config.ipc.mailboxd);
    return mailboxd;
  };
  let mailboxd = await makeMailboxd();

  return {
    authd,
    get mailboxd() {
      return mailboxd;
    },
    async restartMailboxd() {
      mailboxd = await makeMailboxd();
    },
    boxes,
    auths,
    deles,
    add(user, data) {
      const m = { uid: `uid-${uidCounter++}`, data: Buffer.isBuffer(data) ? data : Buffer.from(data) };
      const key = canonicalUser(user);
      boxes.set(key, [...(boxes.get(key) ?? []), m]);
      return m;
    },
    async close() {
      await authd.close(100);
      await mailboxd.close(100);
    },
  };
}
