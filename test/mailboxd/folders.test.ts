// mailboxd's index and IMAP-facing messages: UIDs/UIDVALIDITY/UIDNEXT persisted in
// dovecot-uidlist, folders (Maildir++), flags in file names, MODSEQ, append/fetch/copy/move/
// expunge, change watches, files changed behind mailboxd's back, exactly-once store with a qid.

import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type IpcClient, IpcServer, ok } from '../../src/ipc/index.js';
import { start } from '../../src/mailboxd/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { testClient } from '../helpers/config.js';
import { waitFor } from '../helpers/tmp.js';
import { type Harness, harness } from './helpers.js';

const U = 'folders@example.com';
const V = 'dedup@example.com';
const W = 'watch@example.com';
const X = 'behind@example.com';
const Y = 'follow@example.com';
const Z = 'foreign@example.com';

async function store(c: IpcClient, user: string, text: string, qid?: string): Promise<string> {
  const body = Buffer.from(text);
  const r = await c.store('store', qid ? [user, user, String(body.length), qid] : [user, user, String(body.length)], body);
  assert.equal(r.ok, true, r.params[0]);
  return r.params[0] ?? '';
}

async function append(c: IpcClient, user: string, folder: string, text: string, flags = '', date = ''): Promise<[number, number]> {
  const body = Buffer.from(text);
  const r = await c.store('append', [user, folder, String(body.length), flags, date], body);
  assert.equal(r.ok, true, r.params[0]);
  return [Number(r.params[0]), Number(r.params[1])];
}

async function index(c: IpcClient, user: string, folder: string): Promise<{ head: string[]; msgs: string[][] }> {
  const r = await c.requestList('index', [user, folder]);
  assert.equal(r.reply.ok, true, r.reply.params[0]);
  return { head: r.reply.params, msgs: r.items.map((i) => i.params) };
}

describe('mailboxd index and folders', () => {
  let h: Harness;
  before(async () => {
    h = await harness([U, V, W, X, Y, Z]);
  });
  after(async () => h.close());

  test('UIDs in dovecot-uidlist; folders; append, fetch, flags, copy, move, expunge', async () => {
    const c = h.client();
    await store(c, U, 'Subject: one\r\n\r\n1\r\n');
    await store(c, U, 'Subject: two\r\n\r\n2\r\n');
    const inbox = await index(c, U, 'INBOX');
    assert.deepEqual(inbox.msgs.map((m) => m[0]), ['1', '2']);
    const [count, uidvalidity, uidnext] = inbox.head;
    assert.equal(count, '2');
    assert.equal(uidnext, '3');
    const uidlist = readFileSync(path.join(h.dir, 'mail', U, 'dovecot-uidlist'), 'utf8');
    assert.match(uidlist, new RegExp(`^3 V${uidvalidity} N\\d+ G[0-9a-f]{32}\\n1 :\\S+,S=\\d+\\n2 :\\S+,S=\\d+\\n$`));

    // Folders: Maildir++ with mUTF-7 names on disk, UTF-8 in the IPC.
    const created = await c.request('folder-create', [U, 'Archive.2024']);
    assert.equal(created.ok, true);
    assert.equal((await c.request('folder-create', [U, 'Entwürfe'])).ok, true);
    assert.equal((await c.request('folder-create', [U, 'Archive.2024'])).params[0], 'folder exists');
    assert.equal((await c.request('folder-create', [U, '../x'])).params[0], 'bad folder name');
    assert.ok(existsSync(path.join(h.dir, 'mail', U, '.Entw&APw-rfe', 'maildirfolder')));
    assert.equal((await c.request('folder-subscribe', [U, 'Entwürfe', '1'])).ok, true);
    const folders = await c.requestList('folders', [U]);
    assert.deepEqual(folders.items.map((i) => i.params), [['INBOX', '0'], ['Archive.2024', '0'], ['Entwürfe', '1']]);

    // Append with flags and a date; fetch whole and partial; path inside the Maildir.
    const [auid, avalidity] = await append(c, U, 'Archive.2024', 'Subject: old\r\n\r\nold body\r\n', '\\Seen $Label1', '1600000000');
    assert.equal(auid, 1);
    assert.equal(avalidity, Number(created.params[0]));
    const ai = await index(c, U, 'Archive.2024');
    assert.deepEqual(ai.msgs[0]!.slice(0, 3), ['1', '26', '\\Seen $Label1']);
    assert.equal(ai.msgs[0]![4], '1600000000');
    const whole = await c.requestRaw('fetch', [U, 'Archive.2024', '1']);
    assert.equal(whole.data!.toString(), 'Subject: old\r\n\r\nold body\r\n');
    const part = await c.requestRaw('fetch', [U, 'Archive.2024', '1', '16', '3']);
    assert.equal(part.data!.toString(), 'old');
    const p = await c.request('path', [U, 'Archive.2024', '1']);
    assert.ok(p.params[0]!.startsWith(path.join(h.dir, 'mail', U, '.Archive.2024', 'cur') + '/'));
    assert.match(p.params[0]!, /:2,Sa$/);
    assert.equal(readFileSync(path.join(h.dir, 'mail', U, '.Archive.2024', 'dovecot-keywords'), 'utf8'), '0 $Label1\n');

    // Flags: add, remove, CONDSTORE's UNCHANGEDSINCE.
    const f1 = await c.requestList('flags', [U, 'INBOX', '1:*', 'add', '\\Flagged \\Seen']);
    assert.deepEqual(f1.items.map((i) => i.params.slice(0, 3)), [['1', f1.items[0]!.params[1]!, '\\Flagged \\Seen'], ['2', f1.items[1]!.params[1]!, '\\Flagged \\Seen']]);
    assert.ok(readdirSync(path.join(h.dir, 'mail', U, 'cur')).every((n) => n.endsWith(':2,FS')));
    const modseq1 = Number(f1.items[0]!.params[3]);
    const f2 = await c.requestList('flags', [U, 'INBOX', '2', 'remove', '\\Flagged']);
    assert.equal(f2.items[0]!.params[2], '\\Seen');
    const modseq2 = Number(f2.items[0]!.params[3]);
    assert.ok(modseq2 > modseq1);
    const f3 = await c.requestList('flags', [U, 'INBOX', '1:2', 'add', '\\Answered', String(modseq1)]);
    assert.equal(f3.reply.params[1], '2', 'message 2 changed after UNCHANGEDSINCE: MODIFIED');
    assert.deepEqual(f3.items.map((i) => i.params[0]), ['1']);
    const bad = await c.requestList('flags', [U, 'INBOX', '1', 'add', '\\Bogus']);
    assert.equal(bad.reply.params[0], 'bad flag \\Bogus');

    // changes since a MODSEQ.
    const st = await c.request('folder-status', [U, 'INBOX']);
    const [, , , unseen, highest] = st.params;
    assert.equal(unseen, '0');
    const ch = await c.requestList('changes', [U, 'INBOX', String(modseq2)]);
    assert.deepEqual(ch.items.map((i) => i.params[0]), ['1']);
    assert.equal(ch.reply.params[3], highest);

    // Copy keeps flags and gives new UIDs (COPYUID); move removes the source.
    const cp = await c.request('copy', [U, 'INBOX', '1:2', 'Archive.2024']);
    assert.deepEqual(cp.params, [String(avalidity), '1,2', '2,3']);
    const mv = await c.request('move', [U, 'Archive.2024', '1', 'INBOX']);
    assert.deepEqual(mv.params.slice(1), ['1', '3']);
    const ai2 = await index(c, U, 'Archive.2024');
    assert.deepEqual(ai2.msgs.map((m) => [m[0], m[2]]), [['2', '\\Flagged \\Answered \\Seen'], ['3', '\\Seen']]);
    const in2 = await index(c, U, 'INBOX');
    assert.deepEqual(in2.msgs.map((m) => [m[0], m[2]]), [['1', '\\Flagged \\Answered \\Seen'], ['2', '\\Seen'], ['3', '\\Seen $Label1']]);
    const ch2 = await c.requestList('changes', [U, 'Archive.2024', highest!]);
    assert.ok(ch2.items.some((i) => i.name === 'expunged' && i.params[0] === '1'));

    // Expunge by UID; UIDs are not reused.
    assert.deepEqual((await c.request('expunge', [U, 'INBOX', '2:3'])).params, ['2:3']);
    await store(c, U, 'Subject: three\r\n\r\n3\r\n');
    assert.deepEqual((await index(c, U, 'INBOX')).msgs.map((m) => m[0]), ['1', '4']);

    // POP3 still sees INBOX only, numbered in UID order.
    const l = await c.requestList('list', [U]);
    assert.equal(l.items.length, 2);

    // Rename with children; delete.
    assert.equal((await c.request('folder-rename', [U, 'Archive', 'Old'])).params[0], 'no such folder');
    assert.equal((await c.request('folder-create', [U, 'Archive'])).ok, true);
    assert.equal((await c.request('folder-rename', [U, 'Archive', 'Old'])).ok, true);
    assert.deepEqual((await c.requestList('folders', [U])).items.map((i) => i.params[0]), ['INBOX', 'Entwürfe', 'Old', 'Old.2024']);
    assert.equal((await index(c, U, 'Old.2024')).head[1], String(avalidity), 'UIDVALIDITY kept by a rename');
    assert.equal((await c.request('folder-delete', [U, 'Old.2024'])).ok, true);
    assert.equal((await c.request('folder-delete', [U, 'INBOX'])).params[0], 'cannot delete INBOX');
    assert.equal((await c.request('folder-status', [U, 'Old.2024'])).params[0], 'no such folder');
  });

  test('the index survives a restart: same UIDs, UIDVALIDITY, UIDNEXT', async () => {
    const c = h.client();
    const before = await index(c, U, 'INBOX');
    const s2 = await start({ config: { ...h.config, ipc: { ...h.config.ipc, mailboxd: `unix://${h.dir}/mailboxd2.sock` } }, logger: silentLogger() });
    const c2 = testClient(h.config, s2.addresses.ipc!);
    try {
      const after = await index(c2, U, 'INBOX');
      assert.deepEqual(after.head.slice(0, 3), before.head.slice(0, 3));
      assert.deepEqual(after.msgs.map((m) => m.slice(0, 3)), before.msgs.map((m) => m.slice(0, 3)));
      assert.ok(Number(after.head[3]) >= Number(before.head[3]), 'HIGHESTMODSEQ never goes back');
    } finally {
      c2.close();
      await s2.close();
    }
  });

  test('files added, removed or re-flagged behind our back are picked up', async () => {
    const c = h.client();
    await store(c, X, 'Subject: a\r\n\r\na\r\n');
    await store(c, X, 'Subject: b\r\n\r\nb\r\n');
    const box = path.join(h.dir, 'mail', X);
    // Another MDA drops a file; a reader flags one; one is removed.
    writeFileSync(path.join(box, 'new', '1700000000.M1P1.other,S=18'), 'Subject: c\r\n\r\nc\r\n');
    const names = readdirSync(path.join(box, 'new')).filter((n) => !n.includes('other')).sort();
    renameSync(path.join(box, 'new', names[0]!), path.join(box, 'cur', names[0]! + ':2,S'));
    unlinkSync(path.join(box, 'new', names[1]!));
    const ix = await index(c, X, 'INBOX');
    assert.deepEqual(ix.msgs.map((m) => [m[0], m[2]]), [['1', '\\Seen'], ['3', '']]);
    const l = await c.requestList('list', [X]);
    assert.deepEqual(l.items.map((i) => i.params[2]), [names[0]!.split(',')[0], '1700000000.M1P1.other']);
  });

  test('a UID another writer (Dovecot) appended to dovecot-uidlist between our stores is never handed out again', async () => {
    const c = h.client();
    await store(c, Z, 'Subject: a\r\n\r\na\r\n');
    // Read: numbered now (else deferred numbering could give it a UID after Dovecot's).
    assert.equal((await index(c, Z, 'INBOX')).msgs.length, 1);
    const box = path.join(h.dir, 'mail', Z);
    // Dovecot delivers one message and numbers it 7, under its own lock, between two of ours.
    writeFileSync(path.join(box, 'cur', '1700000001.M2P2.dovecot,S=18:2,'), 'Subject: d\r\n\r\nd\r\n');
    appendFileSync(path.join(box, 'dovecot-uidlist'), '7 :1700000001.M2P2.dovecot,S=18\n');
    await store(c, Z, 'Subject: b\r\n\r\nb\r\n');
    // And one while its dotlock is held by a live process of this host: ours waits it out.
    const lock = path.join(box, 'dovecot-uidlist.lock');
    writeFileSync(lock, `${process.ppid}:${hostname()}`);
    const third = store(c, Z, 'Subject: c\r\n\r\nc\r\n');
    setTimeout(() => unlinkSync(lock), 300);
    await third;
    const ix = await index(c, Z, 'INBOX');
    assert.deepEqual(ix.msgs.map((m) => m[0]), ['1', '7', '8', '9']);
    const lines = readFileSync(path.join(box, 'dovecot-uidlist'), 'utf8').trim().split('\n').slice(1);
    assert.deepEqual(lines.map((l) => l.split(' ')[0]), ['1', '7', '8', '9']);
  });

  test('fetch (no stat check of its own) follows a file renamed behind our back, and answers gone for one removed', async () => {
    const c = h.client();
    await store(c, Y, 'Subject: a\r\n\r\na\r\n');
    await store(c, Y, 'Subject: b\r\n\r\nb\r\n');
    assert.equal((await index(c, Y, 'INBOX')).msgs.length, 2);
    const box = path.join(h.dir, 'mail', Y);
    const named = (subject: string): string => readdirSync(path.join(box, 'new')).find((n) => readFileSync(path.join(box, 'new', n), 'utf8').includes(subject))!;
    const a = named('Subject: a');
    const b = named('Subject: b');
    renameSync(path.join(box, 'new', a), path.join(box, 'cur', a + ':2,S'));
    unlinkSync(path.join(box, 'new', b));
    const moved = await c.requestRaw('fetch', [Y, 'INBOX', '1']);
    assert.equal(moved.reply.ok, true);
    assert.match(moved.data?.toString() ?? '', /Subject: a\r\n\r\na\r\n$/);
    const gone = await c.requestRaw('fetch', [Y, 'INBOX', '2']);
    assert.equal(gone.reply.ok, false);
    assert.match(gone.reply.params.join(' '), /no such message 2/);
  });

  test('store with a queue id is exactly-once: the repeat answers ok: duplicate', async () => {
    const c = h.client();
    assert.equal(await store(c, V, 'Subject: q\r\n\r\nq\r\n', 'Q1A2B3'), '');
    assert.equal(await store(c, V, 'Subject: q\r\n\r\nq\r\n', 'Q1A2B3'), 'duplicate');
    // Concurrent repeats: one copy.
    const rs = await Promise.all([0, 1, 2].map(() => store(h.client(), V, 'Subject: r\r\n\r\nr\r\n', 'R9')));
    assert.deepEqual(rs.sort(), ['', 'duplicate', 'duplicate']);
    // The 3-parameter form is unchanged: always a new copy.
    assert.equal(await store(c, V, 'Subject: q\r\n\r\nq\r\n'), '');
    assert.equal((await c.requestList('list', [V])).items.length, 3);
    // A bad queue id is refused before any data.
    const bad = await c.store('store', [V, V, '3', 'a/b'], Buffer.from('abc'));
    assert.equal(bad.params[0], '5.5.4 bad queue id');
    // Across a restart the key is still known (it lives in the file name).
    const s2 = await start({ config: { ...h.config, ipc: { ...h.config.ipc, mailboxd: `unix://${h.dir}/mailboxd3.sock` } }, logger: silentLogger() });
    const c2 = testClient(h.config, s2.addresses.ipc!);
    try {
      assert.equal(await store(c2, V, 'Subject: q\r\n\r\nq\r\n', 'Q1A2B3'), 'duplicate');
    } finally {
      c2.close();
      await s2.close();
    }
  });

  test('watch: a change alert to the callback, coalesced; unwatch stops them', async () => {
    const got: string[][] = [];
    const cbSock = `unix://${h.dir}/watcher.sock`;
    const watcher = new IpcServer({ serverName: 'watcher', version: 'test', logger: silentLogger() });
    watcher.on('changed', { params: 5, handle: (ctx) => (got.push(ctx.params), ok()) });
    await watcher.listen(cbSock);
    try {
      const c = h.client();
      const w = await c.request('watch', [W, 'INBOX', cbSock]);
      assert.equal(w.ok, true);
      await store(c, W, 'Subject: w\r\n\r\nw\r\n');
      await waitFor(() => got.some((g) => g[2] === '2'), 10_000);
      const last = got[got.length - 1]!;
      assert.deepEqual([last[0], last[1], last[2], last[4]], [W, 'INBOX', '2', '1']);
      assert.equal((await c.request('watch', [W, 'INBOX', 'nonsense'])).params[0], 'bad callback address');
      assert.equal((await c.request('unwatch', [W, 'INBOX', cbSock])).ok, true);
    } finally {
      await watcher.close();
    }
  });
});
