// IPC server + client over TCP and Unix sockets, with real sockets on loopback.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { IpcClient, IpcServer, type Reply, type RequestContext, error, multiLine, ok, rawData } from '../src/ipc/index.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir, waitFor } from './helpers/tmp.js';

const tmp = tempDir();
after(() => tmp.cleanup());

function makeServer(opts: { secret?: string; maxConnections?: number; idleTimeoutMs?: number } = {}): IpcServer {
  const server = new IpcServer({ serverName: 'testd', version: '0.1.0', logger: silentLogger(), ...opts });
  server.on('echo', { params: [0, 10], handle: (ctx) => ok(...ctx.params) });
  server.on('slow', {
    params: 1,
    handle: async (ctx) => {
      await new Promise((r) => setTimeout(r, Number(ctx.params[0])));
      return ok(ctx.params[0]!);
    },
  });
  server.on('list', {
    params: 1,
    handle: (ctx) =>
      multiLine(
        Array.from({ length: Number(ctx.params[0]) }, (_, i) => ({ name: 'mailinfo', params: [String(i + 1), String(100 * (i + 1))] })),
      ),
  });
  // store-style: go-ahead, then LENGTH raw bytes; keeps the bytes for retr. `store` also takes
  // the one-round-trip form (`; now`), `oldstore` (the same handler) does not.
  const storeHandler = async (ctx: RequestContext): Promise<Reply> => {
    const length = Number(ctx.params[1]);
    if (!Number.isSafeInteger(length) || length < 0) return error('bad length');
    if (length > 20 * 1024 * 1024) return error('too big');
    ctx.send('ok');
    const chunks: Buffer[] = [];
    for await (const c of ctx.receiveRaw(length)) chunks.push(c as Buffer);
    ctx.conn.data.set(ctx.params[0]!, Buffer.concat(chunks));
    return ok(String(length));
  };
  server.on('store', { params: 2, rawInput: true, nowLength: (p) => (/^\d{1,12}$/.test(p[1]!) ? Number(p[1]) : null), handle: storeHandler });
  server.on('oldstore', { params: 2, rawInput: true, handle: storeHandler });
  server.on('retr', {
    params: 1,
    handle: (ctx) => {
      const data = ctx.conn.data.get(ctx.params[0]!) as Buffer | undefined;
      return data ? rawData(data) : error('no such message');
    },
  });
  server.on('boom', {
    params: 0,
    handle: () => {
      throw new Error('handler bug');
    },
  });
  return server;
}

/** rawExchange - send bytes on a fresh socket, collect what comes back until close or timeout. */
async function rawExchange(address: string, payload: Buffer | string, waitMs = 300): Promise<string> {
  const [, rest] = address.split('://');
  const sock = address.startsWith('unix://') ? net.connect(rest!) : net.connect(Number(rest!.split(':')[1]), rest!.split(':')[0]);
  const chunks: Buffer[] = [];
  sock.on('data', (c) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  sock.on('error', () => {});
  sock.write(payload);
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, waitMs);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  sock.destroy();
  return Buffer.concat(chunks).toString('utf8');
}

for (const kind of ['tcp', 'unix'] as const) {
  // Every test can run alone or in any order: the server and client come from before(), and
  // the restart test has its own.
  describe(`IPC over ${kind}`, () => {
    let server: IpcServer;
    let address = '';
    let client: IpcClient;
    const listenOn = (name: string): string => (kind === 'tcp' ? 'socket://127.0.0.1:0' : `unix://${path.join(tmp.dir, name)}`);
    before(async () => {
      server = makeServer();
      address = await server.listen(listenOn('ipc.sock'));
      client = new IpcClient(address, { timeoutMs: 5000 });
    });
    after(async () => {
      client.close();
      await server.close(100);
    });

    test('listens and answers ping', async () => {
      assert.deepEqual(await client.request('ping'), { ok: true, params: ['testd 0.1.0'] });
    });

    test('parameters with reserved characters round-trip', async () => {
      const params = ['a;b', '100%', ' lead', 'trail ', 'multi\r\nline', 'ünï😀'];
      assert.deepEqual(await client.request('echo', params), { ok: true, params });
    });

    test('unknown message, wrong parameter count, handler error all answer error', async () => {
      const unknown = await client.request('nosuch', ['x']);
      assert.equal(unknown.ok, false);
      assert.equal(unknown.params[0], 'unknown message nosuch');
      assert.equal((await client.request('slow', [])).ok, false);
      assert.deepEqual(await client.request('boom'), { ok: false, params: ['internal error'] });
      assert.equal((await client.request('ping')).ok, true);
    });

    test('multi-line reply', async () => {
      const res = await client.requestList('list', ['3']);
      assert.deepEqual(res.reply, { ok: true, params: ['3'] });
      assert.deepEqual(
        res.items.map((m) => m.params),
        [
          ['1', '100'],
          ['2', '200'],
          ['3', '300'],
        ],
      );
      const empty = await client.requestList('list', ['0']);
      assert.equal(empty.items.length, 0);
    });

    test('raw data both ways: 0 bytes, 1 byte, 10 MiB', async () => {
      for (const size of [0, 1, 10 * 1024 * 1024]) {
        const body = randomBytes(size);
        const stored = await client.store('store', [`m${size}`, String(size)], body);
        assert.deepEqual(stored, { ok: true, params: [String(size)] });
        const back = await client.requestRaw('retr', [`m${size}`]);
        assert.equal(back.reply.ok, true);
        assert.ok(back.data!.equals(body), `bytes differ for size ${size}`);
      }
      const refused = await client.store('store', ['big', String(30 * 1024 * 1024)], Buffer.alloc(0), 0).catch((e: Error) => e);
      assert.ok(!(refused instanceof Error) && !refused.ok, 'refused header sends no data');
      assert.equal((await client.request('ping')).ok, true);
    });

    test('the one-round-trip form: header and bytes together, one reply, no go-ahead; refused bytes are skipped', async () => {
      // On the wire: no `ok` go-ahead before the reply, and the request after the bytes is read as one.
      const wire = await rawExchange(address, 'store: k ; 3 ; now\r\nabcretr: k\r\nquit\r\n', 5000);
      assert.equal(wire, 'ok: 3\r\nok: 3\r\nabcok\r\n');
      // Refused after its bytes were sent (too big for the handler): they are read and dropped.
      const refused = await rawExchange(address, 'store: big ; 25000000 ; now\r\n' + 'x'.repeat(25_000_000) + 'ping\r\nquit\r\n', 10_000);
      assert.equal(refused, 'error: too big\r\nok: testd 0.1.0\r\nok\r\n');
      // A length that is not one: the bytes cannot be framed, so the connection is closed.
      const bad = await rawExchange(address, 'store: k ; 3x ; now\r\nabcping\r\n', 5000);
      assert.match(bad, /^error: store: bad length in the one-round-trip form, closing/);
      assert.ok(!bad.includes('ok: testd'), 'nothing after the bytes is served');
      // The client: 200 stores at once in one round trip each, then read back; a server without the form gets store().
      const bodies = Array.from({ length: 200 }, (_, i) => randomBytes(i * 37));
      const replies = await Promise.all(bodies.map((b, i) => client.storeNow('store', [`now${i}`, String(b.length)], b)));
      replies.forEach((r, i) => assert.deepEqual(r, { ok: true, params: [String(bodies[i]!.length)] }));
      for (const i of [0, 1, 199]) assert.ok((await client.requestRaw('retr', [`now${i}`])).data!.equals(bodies[i]!));
      const old = await client.storeNow('oldstore', ['o', '5'], Buffer.from('hello'));
      assert.deepEqual(old, { ok: true, params: ['5'] });
      assert.ok((await client.requestRaw('retr', ['o'])).data!.equals(Buffer.from('hello')));
      // A body in pieces, either form.
      for (const name of ['store', 'oldstore']) {
        assert.deepEqual(await client.storeNow(name, [`p-${name}`, '10'], [Buffer.from('hello'), Buffer.alloc(0), Buffer.from('world')]), { ok: true, params: ['10'] });
        assert.equal((await client.requestRaw('retr', [`p-${name}`])).data!.toString(), 'helloworld');
      }
      assert.equal((await client.request('now', ['oldstore'])).ok, false);
    });

    test('the one-round-trip form: a server gone while the bytes are still going out fails the store, and nothing is left unhandled', async () => {
      // A server that takes the form but never reads the bytes: the client's socket fills up.
      const stuck = new IpcServer({ serverName: 'stuck', version: '0', logger: silentLogger() });
      let called = false;
      stuck.on('store', {
        params: 2,
        rawInput: true,
        nowLength: (p) => Number(p[1]),
        handle: () => {
          called = true;
          return new Promise(() => {});
        },
      });
      const at = await stuck.listen(listenOn('stuck.sock'));
      const c = new IpcClient(at, { timeoutMs: 5000 });
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const storing = c.storeNow('store', ['k', String(64 * 1024 * 1024)], Buffer.alloc(64 * 1024 * 1024));
        // Once the header is in (the body, far bigger than any socket buffer, is still going
        // out), the server goes away.
        await waitFor(() => called, 5000);
        await stuck.close(0);
        await assert.rejects(storing);
        // An unhandled rejection surfaces after the promise jobs of this turn: give it a few turns.
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        c.close();
      }
    });

    test('1,000 pipelined requests are answered in order', async () => {
      const replies = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => (i % 100 === 0 ? client.request('slow', [String(i % 7)]) : client.request('echo', [String(i)]))),
      );
      replies.forEach((r, i) => assert.deepEqual(r.params, [i % 100 === 0 ? String(i % 7) : String(i)]));
    });

    test('garbage and a 100 KiB line get error; other connections keep working', async () => {
      const garbage = await rawExchange(address, Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x3a, 0x3b, 0x0a]));
      assert.match(garbage, /^error/);
      const long = await rawExchange(address, 'echo: ' + 'x'.repeat(100 * 1024) + '\r\n', 2000);
      assert.equal(long, 'error: line too long\r\n');
      assert.equal((await client.request('ping')).ok, true);
      const other = new IpcClient(address);
      assert.equal((await other.request('ping')).ok, true);
      other.close();
    });

    test('quit answers ok and closes', async () => {
      const out = await rawExchange(address, 'quit\r\nping\r\n', 2000);
      assert.equal(out, 'ok\r\n');
    });

    test('client reconnects after the server restarts', async () => {
      const first = makeServer();
      const at = await first.listen(listenOn('restart.sock'));
      const c = new IpcClient(at, { timeoutMs: 5000 });
      try {
        assert.equal((await c.request('ping')).ok, true);
        await first.close(100);
        const failed = await c.request('ping').catch((e: Error) => e);
        assert.ok(failed instanceof Error);
        const again = makeServer();
        await again.listen(at);
        assert.equal((await c.request('ping')).ok, true);
        await again.close(100);
      } finally {
        c.close();
      }
    });
  });
}

describe('IPC limits and secret', () => {
  test('connections beyond the cap are refused with error', async () => {
    const server = makeServer({ maxConnections: 2 });
    const address = await server.listen('socket://127.0.0.1:0');
    const a = new IpcClient(address);
    const b = new IpcClient(address);
    await a.request('ping');
    await b.request("ping");
    const third = await rawExchange(address, 'ping\r\n', 1000);
    assert.match(third, /^error: too many connections/);
    a.close();
    b.close();
    await server.close(100);
  });

  test('idle connections are closed', async () => {
    const server = makeServer({ idleTimeoutMs: 200 });
    const address = await server.listen('socket://127.0.0.1:0');
    const started = Date.now();
    await rawExchange(address, '', 3000);
    assert.ok(Date.now() - started < 2500, 'server closed the idle connection');
    await server.close(100);
  });

  test('with a secret, requests need hello first', async () => {
    const server = makeServer({ secret: 's3cret;%' });
    const address = await server.listen('socket://127.0.0.1:0');
    assert.match(await rawExchange(address, 'ping\r\n', 1000), /^error: authentication required/);
    const bad = new IpcClient(address, { secret: 'wrong' });
    assert.equal((await bad.request('ping').catch((e: Error) => ({ ok: false, params: [e.message] }))).ok, false);
    bad.close();
    const good = new IpcClient(address, { secret: 's3cret;%' });
    assert.deepEqual(await good.request('ping'), { ok: true, params: ['testd 0.1.0'] });
    good.close();
    await server.close(100);
  });

  test('request timeout fails the request instead of hanging', async () => {
    const server = makeServer();
    const address = await server.listen('socket://127.0.0.1:0');
    const client = new IpcClient(address, { timeoutMs: 200 });
    const res = await client.request('slow', ['2000']).catch((e: Error) => e);
    assert.ok(res instanceof Error && /no reply/.test(res.message));
    assert.equal((await client.request('ping')).ok, true);
    client.close();
    await server.close(100);
  });
});
