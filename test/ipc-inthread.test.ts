// In-thread calls (server.ts): a client and a server of the same thread, both made with
// `inThread`, talk without a socket; the answers are the ones the wire gives.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { Readable } from 'node:stream';

import { IpcClient, IpcServer, type RequestContext, error, multiLine, ok, preformatted, rawData } from '../src/ipc/index.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir('fmail-inthread-');
after(() => tmp.cleanup());

async function readAll(ctx: RequestContext, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of ctx.receiveRaw(length)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function makeServer(closed: number[], inThread = true): IpcServer {
  const server = new IpcServer({ serverName: 'testd', version: '0.1.0', logger: silentLogger(), inThread, secret: 'a-secret-of-32-characters-000000' });
  server.on('echo', { params: [0, 3], handle: (ctx) => ok(...ctx.params) });
  server.on('whoami', {
    params: 0,
    handle: (ctx) => {
      if (!ctx.conn.data.has('seen')) {
        ctx.conn.data.set('seen', true);
        ctx.conn.onClose(() => closed.push(ctx.conn.id));
      }
      return ok(String(ctx.conn.id), ctx.conn.remote);
    },
  });
  server.on('fail', { params: 0, handle: () => error('4.3.0 try later') });
  server.on('boom', {
    params: 0,
    handle: () => {
      throw new Error('handler bug');
    },
  });
  server.on('retr', { params: 1, handle: (ctx) => rawData(Buffer.from(ctx.params[0]!.repeat(3))) });
  server.on('list', { params: 1, handle: (ctx) => multiLine(Array.from({ length: Number(ctx.params[0]) }, (_, i) => ({ name: 'item', params: [String(i), 'a;b'] }))) });
  server.on('plist', { params: 0, handle: () => preformatted('ok: 2\r\nitem: 1\r\nitem: 2 ; x%3By\r\nok\r\n') });
  server.on('stream', { params: 0, handle: () => rawData(Readable.from([Buffer.from('abc'), Buffer.from('def')], { objectMode: false }), 6) });
  server.on('store', {
    params: 1,
    rawInput: true,
    nowLength: (p) => Number(p[0]),
    handle: async (ctx) => {
      ctx.send('ok');
      const body = await readAll(ctx, Number(ctx.params[0]));
      return ok(String(body.length), body.toString());
    },
  });
  return server;
}

describe('IPC in-thread calls', () => {
  test('same answers as the wire, without a connection; own connection state and close handlers', async () => {
    const closed: number[] = [];
    const address = `unix://${path.join(tmp.dir, 'a.sock')}`;
    const server = makeServer(closed);
    await server.listen(address);
    const local = new IpcClient(address, { inThread: true, secret: 'wrong secret: never sent in-thread' });
    const wire = new IpcClient(address, { secret: 'a-secret-of-32-characters-000000' });
    try {
      for (const c of [local, wire]) {
        assert.deepEqual(await c.request('echo', ['a;b', ' x ', '%']), { ok: true, params: ['a;b', ' x ', '%'] });
        assert.deepEqual(await c.request('echo', ['1', '2', '3', '4']), { ok: false, params: ['echo takes 0 to 3 parameters, got 4'] });
        assert.deepEqual(await c.request('fail'), { ok: false, params: ['4.3.0 try later'] });
        assert.deepEqual(await c.request('boom'), { ok: false, params: ['internal error'] });
        const raw = await c.requestRaw('retr', ['ab']);
        assert.deepEqual(raw.reply, { ok: true, params: ['6'] });
        assert.equal(raw.data?.toString(), 'ababab');
        assert.deepEqual(await c.storeNow('store', ['5'], [Buffer.from('he'), Buffer.from('llo')]), { ok: true, params: ['5', 'hello'] });
        assert.deepEqual(await c.store('store', ['3'], Buffer.from('abc')), { ok: true, params: ['3', 'abc'] });
        assert.deepEqual(await c.store('store', ['4'], Readable.from([Buffer.from('wxyz')]), 4), { ok: true, params: ['4', 'wxyz'] });
        const list = await c.requestList('list', ['3']);
        assert.deepEqual(list.reply, { ok: true, params: ['3'] });
        assert.deepEqual(list.items, [0, 1, 2].map((i) => ({ name: 'item', params: [String(i), 'a;b'] })));
        assert.deepEqual((await c.requestList('plist', [], (line) => line)).items, ['item: 1', 'item: 2 ; x%3By']);
        const st = await c.requestStream('stream');
        const parts: Buffer[] = [];
        for await (const chunk of st.stream!) parts.push(chunk as Buffer);
        assert.equal(st.size, 6);
        assert.equal(Buffer.concat(parts).toString(), 'abcdef');
      }
      // Only the wire client ever connected.
      assert.equal(server.connectionCount, 1);
      const [id, remote] = (await local.request('whoami')).params;
      assert.equal(remote, 'local');
      assert.equal((await local.request('whoami')).params[0], id, 'one connection state per client');
      local.close();
      assert.deepEqual(closed, [Number(id)], 'closing the client runs its close handlers');
    } finally {
      local.close();
      wire.close();
      await server.close();
    }
  });

  test('a server without inThread, or one that closed, is reached over the socket', async () => {
    const address = `unix://${path.join(tmp.dir, 'b.sock')}`;
    const plain = makeServer([], false);
    await plain.listen(address);
    const client = new IpcClient(address, { inThread: true, secret: 'a-secret-of-32-characters-000000' });
    try {
      assert.equal((await client.request('whoami')).params[1], 'unix');
      assert.equal(plain.connectionCount, 1);
    } finally {
      client.close();
      await plain.close();
    }
    const inThread = makeServer([], true);
    await inThread.listen(address);
    const again = new IpcClient(address, { inThread: true, secret: 'a-secret-of-32-characters-000000' });
    try {
      assert.equal((await again.request('whoami')).params[1], 'local');
      await inThread.close();
      // Gone from this thread: the client tries the socket, which nobody serves any more.
      await assert.rejects(again.request('whoami'));
    } finally {
      again.close();
    }
  });
});
