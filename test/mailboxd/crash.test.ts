// Crash test: mailboxd runs in a child process while clients store messages without pause; the
// child is killed with SIGKILL at a random moment. Afterwards no partial message may be visible
// to `list`, and every store that was answered `ok` must be there.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { start } from '../../src/mailboxd/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { fakeAuthd } from './helpers.js';

const USER = 'crash@example.com';
const ITERATIONS = 8;
const CLIENTS = 4;
const DEADLINE_MS = 35_000;

const tmp = tempDir('fmail-crash-');
after(() => (process.env.KEEP ? undefined : tmp.cleanup()));

/** message - `X-Id` and `X-Len` headers, then LEN pattern bytes, then `END id`. */
function message(id: string, len: number): Buffer {
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = 0x61 + (i % 26);
  return Buffer.concat([Buffer.from(`X-Id: ${id}\r\nX-Len: ${len}\r\n\r\n`), body, Buffer.from(`\r\nEND ${id}\r\n`)]);
}

/** check - a complete message as stored (Delivered-To first); returns its id or throws. */
function check(data: Buffer): string {
  const text = data.toString('latin1');
  const m = /^Delivered-To: crash@example\.com\r\nX-Id: (\S+)\r\nX-Len: (\d+)\r\n\r\n/.exec(text);
  assert.ok(m, `bad head: ${JSON.stringify(text.slice(0, 120))}`);
  const expected = Buffer.concat([Buffer.from(`Delivered-To: ${USER}\r\n`), message(m[1]!, Number(m[2]))]);
  assert.ok(data.equals(expected), `message ${m[1]} is partial or corrupt (${data.length} of ${expected.length} bytes)`);
  return m[1]!;
}

function startChild(configJson: string): Promise<ChildProcess> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.js');
  const child = spawn(process.execPath, [script, configJson], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('child did not start')), 20_000);
    child.stdout!.on('data', (d) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`child exited early: ${code}`)));
  });
}

test('SIGKILL during stores never leaves a partial message visible to list', async () => {
  const config = testConfig(tmp.dir);
  const raw = { data_dir: tmp.dir, log: { level: 'silent' }, metrics: { listen: '' }, ipc: { authd: config.ipc.authd, mailboxd: config.ipc.mailboxd } };
  const authd = await fakeAuthd(config, [USER]);
  const acked = new Set<string>();
  const started = Date.now();
  let inFlightAtKill = 0;
  let seq = 0;
  try {
    for (let it = 0; it < ITERATIONS && Date.now() - started < DEADLINE_MS; it++) {
      const child = await startChild(JSON.stringify(raw));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      let inFlight = 0;
      let stop = false;
      const clients = Array.from({ length: CLIENTS }, () => testClient(config, config.ipc.mailboxd, { timeoutMs: 10_000 }));
      const loops = clients.map(async (c) => {
        for (let n = 0; n < 10_000 && !stop; n++) {
          const id = `i${it}-${seq++}`;
          const body = message(id, Math.floor(Math.random() * 256 * 1024));
          inFlight++;
          try {
            const r = await c.store('store', [USER, USER, String(body.length)], body);
            if (r.ok) acked.add(id);
          } catch {
            return; // the server died under us
          } finally {
            inFlight--;
          }
        }
      });
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 350));
      inFlightAtKill += inFlight;
      child.kill('SIGKILL');
      await exited;
      stop = true;
      await Promise.all(loops);
      for (const c of clients) c.close();

      // Restart in-process and look through list + retr, as pop3d would.
      const server = await start({ config, logger: silentLogger() });
      const c = testClient(config, server.addresses.ipc!, { timeoutMs: 30_000 });
      try {
        const l = await c.requestList('list', [USER]);
        assert.equal(l.reply.ok, true, `list: ${l.reply.params[0]}`);
        const seen = new Set<string>();
        for (const item of l.items) {
          const r = await c.requestRaw('retr', [USER, item.params[0]!]);
          assert.equal(r.reply.ok, true, `retr ${item.params[0]}: ${r.reply.params[0]}`);
          assert.equal(r.data!.length, Number(item.params[1]), 'listed size is the size retr sends');
          seen.add(check(r.data!));
        }
        for (const id of acked) assert.ok(seen.has(id), `acknowledged message ${id} is missing after the crash`);
      } finally {
        c.close();
        await server.close();
      }
    }
    assert.ok(acked.size > 0, 'some stores completed');
    assert.ok(inFlightAtKill > 0, 'kills landed while stores were in progress');
  } finally {
    await authd.close();
  }
});

test('index crash safety: SIGKILL during stores and deletes; index = Maildir, nothing acked lost or back, UIDs never reused', async () => {
  const config = testConfig(tmp.dir);
  const user = 'index@example.com';
  const raw = { data_dir: tmp.dir, log: { level: 'silent' }, metrics: { listen: '' }, ipc: { authd: config.ipc.authd, mailboxd: config.ipc.mailboxd } };
  const authd = await fakeAuthd(config, [user]);
  const stored = new Set<string>();
  const deleted = new Set<string>();
  /** Asked to be deleted (the answer may have been lost in the crash): may or may not be there. */
  const asked = new Set<string>();
  /** Every UID ever seen, with the message it named: a UID may never name another one. */
  const uidOf = new Map<number, string>();
  let known: Array<[number, string]> = [];
  let uidvalidity = '';
  const started = Date.now();
  let kills = 0;
  let deletesAtKill = 0;
  let seq = 0;
  try {
    for (let it = 0; it < ITERATIONS && Date.now() - started < DEADLINE_MS; it++) {
      const child = await startChild(JSON.stringify(raw));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      let stop = false;
      let deletesInFlight = 0;
      const clients = Array.from({ length: 3 }, () => testClient(config, config.ipc.mailboxd, { timeoutMs: 10_000 }));
      const storeLoops = clients.slice(0, 2).map(async (c) => {
        for (let n = 0; n < 10_000 && !stop; n++) {
          const id = `x${it}-${seq++}`;
          const body = Buffer.from(`X-Id: ${id}\r\n\r\n${'z'.repeat(Math.floor(Math.random() * 8192))}\r\n`);
          try {
            const r = await c.store('store', [user, user, String(body.length)], body);
            if (r.ok) stored.add(id);
          } catch {
            return;
          }
        }
      });
      // Deletes by UID of messages known from the last check, half POP3-style (`dele`), half `expunge`.
      const victims = known.filter(() => Math.random() < 0.5);
      const deleter = (async () => {
        const c = clients[2]!;
        for (const [uid, id] of victims) {
          if (stop) return;
          deletesInFlight++;
          asked.add(id);
          try {
            const r = await c.request('expunge', [user, 'INBOX', String(uid)]);
            if (r.ok && r.params[0] === String(uid)) deleted.add(id);
          } catch {
            return;
          } finally {
            deletesInFlight--;
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 60 + Math.random() * 300));
      deletesAtKill += deletesInFlight;
      child.kill('SIGKILL');
      kills++;
      await exited;
      stop = true;
      await Promise.all([...storeLoops, deleter]);
      for (const c of clients) c.close();

      const server = await start({ config, logger: silentLogger() });
      const c = testClient(config, server.addresses.ipc!, { timeoutMs: 30_000 });
      try {
        const ix = await c.requestList('index', [user, 'INBOX']);
        assert.equal(ix.reply.ok, true, `index: ${ix.reply.params[0]}`);
        if (uidvalidity) assert.equal(ix.reply.params[1], uidvalidity, 'UIDVALIDITY kept');
        uidvalidity = ix.reply.params[1]!;
        const box = path.join(tmp.dir, 'mail', user);
        const files = ['new', 'cur'].flatMap((sub) => readdirSync(path.join(box, sub)));
        assert.equal(ix.items.length, files.length, 'the index lists exactly the files in new/ and cur/');
        const uidlist = readFileSync(path.join(box, 'dovecot-uidlist'), 'utf8');
        const now: Array<[number, string]> = [];
        const seen = new Set<string>();
        for (const item of ix.items) {
          const uid = Number(item.params[0]);
          const r = await c.requestRaw('fetch', [user, 'INBOX', String(uid)]);
          assert.equal(r.reply.ok, true);
          const id = /^Delivered-To: [^\r]+\r\nX-Id: (\S+)\r\n/.exec(r.data!.toString('latin1'))?.[1];
          assert.ok(id, 'a complete message');
          assert.ok(!deleted.has(id), `deleted message ${id} is back`);
          const before = uidOf.get(uid);
          assert.ok(before === undefined || before === id, `UID ${uid} named ${before} and now ${id}`);
          assert.ok(uid < Number(ix.reply.params[2]), 'UID below UIDNEXT');
          assert.match(uidlist, new RegExp(`^${uid} :`, 'm'), `UID ${uid} is in dovecot-uidlist`);
          uidOf.set(uid, id);
          seen.add(id);
          now.push([uid, id]);
        }
        for (const id of stored) if (!asked.has(id)) assert.ok(seen.has(id), `acknowledged message ${id} is missing after the crash`);
        // A message seen before keeps its UID.
        for (const [uid, id] of known) if (seen.has(id)) assert.ok(now.some(([u, i]) => u === uid && i === id), `message ${id} changed its UID`);
        known = now;
      } finally {
        c.close();
        await server.close();
      }
    }
    assert.ok(kills >= 2, `seed of this run: kills ${kills}`);
    assert.ok(stored.size > 0 && deleted.size > 0, `stores ${stored.size} and deletes ${deleted.size} happened`);
    console.log(`index crash test: ${kills} kills, ${stored.size} stores and ${deleted.size} deletes acknowledged, ${deletesAtKill} deletes in flight at a kill`);
  } finally {
    await authd.close();
  }
});
