// mailboxd on the wire: the seed's list example, exact-byte round trips, numbering, bad input,
// limits, concurrency, a client that vanishes mid-data.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { parseAddress } from '../../src/ipc/index.js';
import { waitFor } from '../helpers/tmp.js';
import { ipcSecret } from '../../src/shared/ipc-secret.js';
import { testClient } from '../helpers/config.js';
import { type Harness, fakeAuthd, harness } from './helpers.js';

const ALICE = 'alice@example.com';
const dt = (rcpt: string): Buffer => Buffer.from(`Delivered-To: ${rcpt}\r\n`);

/**
 * wire - send raw lines on a fresh socket, after the `hello: SECRET` handshake, and collect
 * what comes back (the handshake's `ok` left out) until `until` matches.
 */
async function wire(h: Harness, send: string, until: (s: string) => boolean): Promise<string> {
  const addr = parseAddress(h.mailboxd.addresses.ipc!);
  assert.equal(addr.kind, 'unix');
  const sock = net.connect((addr as { path: string }).path);
  let got = '';
  sock.on('data', (d) => (got += d.toString('latin1')));
  sock.write(`hello: ${ipcSecret(h.config)}\r\n${send}`);
  const body = (): string => (got.startsWith('ok\r\n') ? got.slice(4) : '');
  try {
    await waitFor(() => until(body()), 20_000);
  } finally {
    sock.destroy();
  }
  return body();
}

/** files - the messages in a Maildir subfolder (tmp/'s dotlock link sources are not messages). */
function files(h: Harness, user: string, sub: string): string[] {
  try {
    return readdirSync(path.join(h.dir, 'mail', user, sub)).filter((f) => !f.startsWith('.dotlock.'));
  } catch {
    return [];
  }
}

describe('mailboxd', () => {
  let h: Harness;
  before(async () => {
    h = await harness(['user_john', ALICE, 'bob@example.com', 'quota@example.com', 'carol@example.com', 'dave@example.com']);
  });
  after(async () => h.close());

  test("the seed's list example, on the wire", async () => {
    const c = h.client();
    const hdr = dt('john@example.com').length;
    assert.deepEqual((await c.store('store', ['user_john', 'john@example.com', String(120 - hdr)], Buffer.alloc(120 - hdr, 'a'))).ok, true);
    assert.deepEqual((await c.store('store', ['user_john', 'john@example.com', String(300 - hdr)], Buffer.alloc(300 - hdr, 'b'))).ok, true);
    const got = await wire(h, 'list: user_john\r\n', (s) => /\r\nok\r\n$/.test(s));
    const m = /^ok: 2\r\nmailinfo: 1 ; 120 ; (\S+)\r\nmailinfo: 2 ; 300 ; (\S+)\r\nok\r\n$/.exec(got);
    assert.ok(m, `unexpected reply: ${JSON.stringify(got)}`);
    assert.notEqual(m[1], m[2]);
    // The UID is the Maildir base name of the file (stable for POP3 UIDL).
    const names = files(h, 'user_john', 'new');
    assert.deepEqual(names.map((n) => n.split(',')[0]).sort(), [m[1], m[2]].sort());
    assert.ok(names.every((n) => /^\d+\.M\d+P\d+Q\d+\.[^,]+,S=\d+$/.test(n)), names.join(' '));
  });

  test('round trips with exact bytes: empty, binary 8-bit, 20 MiB; Delivered-To placement', async () => {
    const c = h.client();
    const all = Buffer.alloc(256 * 4);
    for (let i = 0; i < all.length; i++) all[i] = i % 256;
    const big = randomBytes(20 * 1024 * 1024);
    const withRp = Buffer.from('Return-Path: <sender@remote.test>\r\nSubject: x\r\n\r\nbody\r\n');
    const rcpt = 'Alice+tag@Example.com';
    const bodies = [Buffer.alloc(0), all, big, withRp, Buffer.from('Subject: no return path\r\n\r\nhi\r\n')];
    for (const b of bodies) {
      const r = await c.store('store', [ALICE, rcpt, String(b.length)], b);
      assert.equal(r.ok, true, r.params.join(' '));
    }
    const expected = [
      dt(rcpt),
      Buffer.concat([dt(rcpt), all]),
      Buffer.concat([dt(rcpt), big]),
      Buffer.concat([Buffer.from('Return-Path: <sender@remote.test>\r\n'), dt(rcpt), Buffer.from('Subject: x\r\n\r\nbody\r\n')]),
      Buffer.concat([dt(rcpt), Buffer.from('Subject: no return path\r\n\r\nhi\r\n')]),
    ];
    const list = await c.requestList('list', [ALICE]);
    assert.equal(list.reply.ok, true);
    assert.equal(list.items.length, expected.length);
    for (let i = 0; i < expected.length; i++) {
      const [n, size] = list.items[i]!.params;
      assert.equal(n, String(i + 1));
      assert.equal(size, String(expected[i]!.length), `size of message ${i + 1}`);
      const r = await c.requestRaw('retr', [ALICE, String(i + 1)]);
      assert.equal(r.reply.ok, true);
      assert.equal(r.reply.params[0], size);
      assert.ok(r.data!.equals(expected[i]!), `bytes of message ${i + 1}`);
    }
    // Case of the user name does not make a second mailbox.
    const upper = await c.requestList('list', ['ALICE@EXAMPLE.COM']);
    assert.equal(upper.items.length, expected.length);
    for (let i = expected.length; i >= 1; i--) assert.equal((await c.request('dele', [ALICE, String(i)])).ok, true);
    assert.equal((await c.requestList('list', [ALICE])).items.length, 0);
    assert.deepEqual(files(h, ALICE, 'tmp'), []);
  });

  test('numbering stays fixed after dele until the next list', async () => {
    const c = h.client();
    const user = 'bob@example.com';
    for (let i = 1; i <= 4; i++) {
      const b = Buffer.from(`Subject: ${i}\r\n\r\nmessage ${i}\r\n`);
      assert.equal((await c.store('store', [user, user, String(b.length)], b)).ok, true);
    }
    const l1 = await c.requestList('list', [user]);
    assert.equal(l1.items.length, 4);
    assert.equal((await c.request('dele', [user, '2'])).ok, true);
    const r3 = await c.requestRaw('retr', [user, '3']);
    assert.match(r3.data!.toString(), /message 3/);
    assert.equal((await c.requestRaw('retr', [user, '2'])).reply.ok, false, 'retr of a deleted number');
    assert.equal((await c.request('dele', [user, '2'])).ok, false, 'dele twice');
    assert.equal((await c.request('dele', [user, '5'])).ok, false, 'unknown number');
    assert.equal((await c.request('dele', [user, '0'])).ok, false);
    assert.equal((await c.request('dele', [user, 'x'])).ok, false);
    // Another connection's list does not change this one's numbering.
    const other = h.client();
    assert.equal((await other.requestList('list', [user])).items.length, 3);
    assert.match((await c.requestRaw('retr', [user, '4'])).data!.toString(), /message 4/);
    // The next list renumbers: 1, 3, 4 -> 1, 2, 3; UIDs unchanged.
    const l2 = await c.requestList('list', [user]);
    assert.deepEqual(
      l2.items.map((m) => m.params[2]),
      [l1.items[0]!.params[2], l1.items[2]!.params[2], l1.items[3]!.params[2]],
    );
    assert.match((await c.requestRaw('retr', [user, '2'])).data!.toString(), /message 3/);
  });

  test('pipelined list then retr on one connection sees that list', async () => {
    const user = 'carol@example.com';
    const c = h.client();
    const b = Buffer.from('Subject: pipelined\r\n\r\nx\r\n');
    assert.equal((await c.store('store', [user, user, String(b.length)], b)).ok, true);
    const got = await wire(h, `list: ${user}\r\nretr: ${user} ; 1\r\ndele: ${user} ; 1\r\ndele: ${user} ; 1\r\n`, (s) => /ok\r\nerror[^\r]*\r\n$/.test(s));
    assert.match(got, /^ok: 1\r\nmailinfo: 1 ; \d+ ; \S+\r\nok\r\nok: \d+\r\nDelivered-To: carol@example.com\r\nSubject: pipelined\r\n\r\nx\r\nok\r\nerror/);
  });

  test('bad users, lengths and recipients are refused before any data', async () => {
    const c = h.client();
    const b = Buffer.from('x');
    for (const user of ['nobody@example.com', '../etc@example.com', 'a/b@example.com', '..', 'x\u0000y@example.com', '', 'a b@example.com']) {
      const r = await c.store('store', [user, 'r@example.com', '1'], b);
      assert.equal(r.ok, false, `store to ${JSON.stringify(user)}`);
      assert.equal((await c.requestList('list', [user])).reply.ok, false, `list of ${JSON.stringify(user)}`);
    }
    assert.equal((await c.store('store', [ALICE, 'r@example.com', '-1'], b)).ok, false);
    assert.equal((await c.store('store', [ALICE, 'r@example.com', '1x'], b)).ok, false);
    assert.equal((await c.store('store', [ALICE, 'evil\r\nBcc: x@y', '1'], b)).ok, false, 'header injection');
    const tooBig = h.config.mailboxd.max_message_size + 1;
    const r = await c.store('store', [ALICE, 'r@example.com', String(tooBig)], b);
    assert.equal(r.ok, false);
    assert.match(r.params[0]!, /too large/);
    assert.equal((await c.request('ping')).ok, true, 'connection still usable');
    // Only mailboxes of known users exist; nothing was created for the refused names.
    const known = new Set(['user_john', ALICE, 'bob@example.com', 'carol@example.com', 'dave@example.com']);
    assert.deepEqual(readdirSync(path.join(h.dir, 'mail')).filter((d) => !known.has(d)), []);
    assert.ok(!readdirSync(h.dir).includes('etc@example.com'));
  });

  test('a client that disconnects mid-data leaves nothing in new/', async () => {
    const user = 'dave@example.com';
    const addr = parseAddress(h.mailboxd.addresses.ipc!) as { path: string };
    const sock = net.connect(addr.path);
    let got = '';
    sock.on('data', (d) => (got += d.toString()));
    sock.write(`hello: ${ipcSecret(h.config)}\r\nstore: ${user} ; ${user} ; 100000\r\n`);
    await waitFor(() => got.startsWith('ok\r\nok\r\n'));
    // More than one 64 KiB piece, so the tmp/ file exists before the data ends.
    sock.write(Buffer.alloc(70_000, 'z'));
    await waitFor(() => files(h, user, 'tmp').length === 1, 20_000);
    sock.destroy();
    await waitFor(() => files(h, user, 'tmp').length === 0, 20_000);
    assert.deepEqual(files(h, user, 'new'), []);
    assert.equal((await h.client().requestList('list', [user])).items.length, 0);
  });

  test('two connections deleting the same message: one ok, one error', async () => {
    const user = 'dave@example.com';
    const a = h.client();
    const b = h.client();
    const body = Buffer.from('Subject: race\r\n\r\n');
    for (let i = 0; i < 10; i++) assert.equal((await a.store('store', [user, user, String(body.length)], body)).ok, true);
    assert.equal((await a.requestList('list', [user])).items.length, 10);
    assert.equal((await b.requestList('list', [user])).items.length, 10);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => [a.request('dele', [user, String(i + 1)]), b.request('dele', [user, String(i + 1)])]).flat(),
    );
    for (let i = 0; i < 10; i++) {
      assert.equal([results[2 * i]!.ok, results[2 * i + 1]!.ok].filter(Boolean).length, 1, `message ${i + 1}`);
    }
    assert.equal((await a.requestList('list', [user])).items.length, 0);
  });

  test('a Maildir removed under mailboxd is made again by the next store, small or big', async () => {
    const user = 'dave@example.com';
    const c = h.client();
    const store = async (body: Buffer): Promise<boolean> => (await c.store('store', [user, user, String(body.length)], body)).ok;
    assert.ok(await store(Buffer.from('Subject: before\r\n\r\nx\r\n')));
    for (const body of [Buffer.from('Subject: small\r\n\r\nx\r\n'), Buffer.from(`Subject: big\r\n\r\n${'y'.repeat(78)}\r\n`.repeat(1000))]) {
      rmSync(path.join(h.dir, 'mail', user), { recursive: true, force: true });
      assert.ok(await store(body), `store of ${body.length} bytes after the Maildir was removed`);
      const news = files(h, user, 'new');
      assert.equal(news.length, 1, news.join(' '));
      assert.ok(readFileSync(path.join(h.dir, 'mail', user, 'new', news[0]!)).subarray(-body.length).equals(body));
    }
  });

  test('concurrent stores and lists of one mailbox', async () => {
    const user = 'carol@example.com';
    const clients = Array.from({ length: 8 }, () => h.client());
    const lister = h.client();
    const before = (await lister.requestList('list', [user])).items.length;
    const stores = clients.flatMap((c, ci) =>
      Array.from({ length: 10 }, (_, i) => {
        const b = Buffer.from(`Subject: c${ci} m${i}\r\n\r\n${'x'.repeat(1000 * ci + i)}\r\n`);
        return c.store('store', [user, user, String(b.length)], b);
      }),
    );
    const lists: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) lists.push(lister.requestList('list', [user]));
    const results = await Promise.all(stores);
    await Promise.all(lists);
    assert.ok(results.every((r) => r.ok));
    const final = await lister.requestList('list', [user]);
    assert.equal(final.items.length, before + 80);
    // Every listed size is the file size, and every message is complete.
    for (const m of final.items.slice(before)) {
      const r = await lister.requestRaw('retr', [user, m.params[0]!]);
      assert.equal(r.data!.length, Number(m.params[1]));
      assert.match(r.data!.toString(), /^Delivered-To: carol@example.com\r\nSubject: c(\d) m(\d)\r\n\r\nx*\r\n$/);
    }
  });

  test('quota: a store that would exceed it is refused, nothing written', async () => {
    const q = await harness(['quota@example.com'], { mailboxd: { quota_bytes: 1000 } });
    try {
      const c = q.client();
      const user = 'quota@example.com';
      const b = Buffer.alloc(400, 'q');
      assert.equal((await c.store('store', [user, user, '400'], b)).ok, true);
      assert.equal((await c.store('store', [user, user, '400'], b)).ok, true);
      const r = await c.store('store', [user, user, '400'], b);
      assert.deepEqual(r, { ok: false, params: ['5.2.2 quota exceeded'] });
      assert.equal(files(q, user, 'new').length, 2);
      assert.deepEqual(files(q, user, 'tmp'), []);
    } finally {
      await q.close();
    }
  });

  test('files written by other tools: no ,S= (stat), cur/ with flags, moved between list and retr', async () => {
    const user = 'bob@example.com';
    const box = path.join(h.dir, 'mail', user);
    const c = testClient(h.config, h.mailboxd.addresses.ipc!);
    try {
      for (const n of (await c.requestList('list', [user])).items) await c.request('dele', [user, n.params[0]!]);
      writeFileSync(path.join(box, 'new', '1000000000.P123Q1.oldhost'), 'Subject: qmail style\n\nA\n');
      writeFileSync(path.join(box, 'cur', '1000000001.M5P9.host,S=14,W=15:2,S'), 'Subject: cur\n\n');
      const l = await c.requestList('list', [user]);
      assert.deepEqual(
        l.items.map((m) => m.params),
        [
          ['1', '24', '1000000000.P123Q1.oldhost'],
          ['2', '14', '1000000001.M5P9.host'],
        ],
      );
      // Another reader moves message 1 to cur/ with flags: retr and dele still find it.
      const { renameSync } = await import('node:fs');
      renameSync(path.join(box, 'new', '1000000000.P123Q1.oldhost'), path.join(box, 'cur', '1000000000.P123Q1.oldhost:2,S'));
      assert.equal((await c.requestRaw('retr', [user, '1'])).data!.toString(), 'Subject: qmail style\n\nA\n');
      renameSync(path.join(box, 'cur', '1000000000.P123Q1.oldhost:2,S'), path.join(box, 'cur', '1000000000.P123Q1.oldhost:2,RS'));
      assert.equal((await c.request('dele', [user, '1'])).ok, true);
      assert.equal(readFileSync(path.join(box, 'cur', '1000000001.M5P9.host,S=14,W=15:2,S'), 'utf8'), 'Subject: cur\n\n');
      assert.deepEqual(readdirSync(path.join(box, 'cur')), ['1000000001.M5P9.host,S=14,W=15:2,S']);
    } finally {
      c.close();
    }
  });

  test('an authd without resolve is asked verify', async () => {
    await h.authd.close();
    h.authd = await fakeAuthd(h.config, ['dave@example.com'], { verifyOnly: true });
    const c = h.client();
    const b = Buffer.from('Subject: v\r\n\r\n');
    assert.equal((await c.store('store', ['dave@example.com', 'd@example.com', String(b.length)], b)).ok, true);
    assert.equal((await c.store('store', ['alice@example.com', 'd@example.com', String(b.length)], b)).ok, false);
  });
});
