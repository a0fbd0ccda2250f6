// queued on PostgreSQL ([queued] backend = "postgres"), against a private cluster this test
// starts (test/helpers/postgres.ts): `fmail db migrate`, put/push/pop/get/done/defer/renew,
// lease expiry and abandon, admin messages, two instances on one database (mail, alerts and a
// killed instance's lease cross over), restart durability (queued and PostgreSQL restarted).

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import nodemailer from 'nodemailer';
import pg from 'pg';

import type { Config } from '../../src/config/schema.js';
import type { IpcClient } from '../../src/ipc/index.js';
import { SCHEMA_VERSION, migrate } from '../../src/queued/pg-schema.js';
import { ipcSecret } from '../../src/shared/ipc-secret.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testClient, testConfig } from '../helpers/config.js';
import { FMAIL, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { NO_POSTGRES, type TestPostgres, startPostgres } from '../helpers/postgres.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { startQueued, startSubscriber } from './helpers.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pg-child.js');
const dirs: Array<{ cleanup(): void }> = [];
let pgs: TestPostgres;
let dbNo = 0;

if (NO_POSTGRES) console.log(`# skipping queued-on-PostgreSQL tests: ${NO_POSTGRES}`);

/** A fresh, migrated database. */
async function database(migrated = true): Promise<string> {
  const url = await pgs.createDatabase(`q${++dbNo}`);
  if (migrated) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await migrate(c);
    await c.end();
  }
  return url;
}

function pgConfig(url: string, lease_s = 600): { cfg: Config; dir: string } {
  const t = tempDir('fmail-queued-pg-');
  dirs.push(t);
  return { cfg: testConfig(t.dir, { queued: { backend: 'postgres', postgres_url: url, lease_s } }), dir: t.dir };
}

async function put(c: IpcClient, queue: string, data: Buffer): Promise<string> {
  const s = await c.request('slot', [queue]);
  assert.ok(s.ok, String(s.params));
  const r = await c.store('put', [queue, s.params[0]!, String(data.length)], data);
  assert.ok(r.ok, String(r.params));
  return path.basename(s.params[0]!);
}

async function push(c: IpcClient, queue: string, data: Buffer): Promise<string> {
  const s = await c.request('slot', [queue]);
  writeFileSync(s.params[0]!, data);
  const r = await c.request('push', [queue, s.params[0]!, 'synced']);
  assert.ok(r.ok, String(r.params));
  return path.basename(s.params[0]!);
}

async function pop(c: IpcClient, queue: string): Promise<string | null> {
  const r = await c.request('pop', [queue]);
  return r.ok ? r.params[0]! : null;
}

function fmail(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [FMAIL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

describe('queued on PostgreSQL', { skip: NO_POSTGRES }, () => {
  before(async () => {
    pgs = await startPostgres();
  });
  after(async () => {
    await pgs?.cleanup();
    dirs.forEach((d) => d.cleanup());
  });

  test('fmail db migrate creates the schema, is idempotent; queued refuses an old schema', async () => {
    const url = await database(false);
    const { cfg, dir } = pgConfig(url);
    await assert.rejects(startQueued(cfg), /schema is at version 0, queued needs \d+: run `fmail db migrate/);
    await assert.rejects(startQueued(testConfig(dir, { queued: { backend: 'postgres' } })), /needs \[queued\] postgres_url/);

    const file = path.join(dir, 'fmail.toml');
    writeFileSync(file, `data_dir = ${JSON.stringify(dir)}\n[queued]\nbackend = "postgres"\npostgres_url = ${JSON.stringify(url)}\n`);
    const first = await fmail(['db', 'migrate', '-c', file]);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, new RegExp(`migrated from version 0 to ${SCHEMA_VERSION}`));
    const again = await fmail(['db', 'migrate', '-c', file]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /schema up to date/);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const rows = (await c.query('SELECT version FROM fmail_schema_version ORDER BY version')).rows.map((r: { version: number }) => r.version);
    await c.end();
    assert.deepEqual(rows, Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));

    const q = await startQueued(cfg);
    await q.close();
    const bad = await fmail(['db', 'migrate', '--url', 'postgres://fmail@127.0.0.1:1/none']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /ECONNREFUSED/);
  });

  test('put, push, pop, get, renew, defer, done, lease expiry, abandon, admin', async () => {
    const url = await database();
    const { cfg, dir } = pgConfig(url, 1);
    const q = await startQueued(cfg);
    const c = testClient(cfg, q.addresses.ipc!);
    try {
      const bodies = [randomBytes(5000), randomBytes(2 * 1024 * 1024), Buffer.alloc(0)];
      const ids = [await put(c, 'incoming', bodies[0]!), await push(c, 'incoming', bodies[1]!), await put(c, 'incoming', bodies[2]!)];
      const stats = await c.requestList('qstats');
      assert.deepEqual(stats.items.map((m) => m.params), [['incoming', 'ready=3', 'leased=0', 'deferred=0', 'slots=0']]);

      // FIFO; the path is a local copy of the row's bytes; get serves the same bytes.
      const paths: string[] = [];
      for (let i = 0; i < 3; i++) paths.push((await pop(c, 'incoming'))!);
      assert.deepEqual(paths.map((p) => path.basename(p)), ids);
      for (let i = 0; i < 3; i++) {
        assert.equal(path.dirname(paths[i]!), path.join(dir, 'queue', 'incoming', 'cache'));
        assert.ok(readFileSync(paths[i]!).equals(bodies[i]!), `cache file ${i}`);
        const g = await c.requestRaw('get', ['incoming', paths[i]!]);
        assert.ok(g.data!.equals(bodies[i]!), `get ${i}`);
      }
      assert.equal(await pop(c, 'incoming'), null);

      // renew: ours only; a stranger's renew, done or defer of a path not handed out is refused.
      const left = await c.request('renew', ['incoming', paths[0]!, '30']);
      assert.ok(left.ok && Number(left.params[0]) >= 29, String(left.params));
      const other = testClient(cfg, q.addresses.ipc!);
      assert.equal((await other.request('renew', ['incoming', paths[0]!])).ok, false);
      other.close();
      for (const verb of ['done', 'renew']) assert.match((await c.request(verb, ['incoming', '/etc/passwd'])).params[0]!, /^5\.5\.4 not a leased message/);

      // defer: back after SECONDS with attempts and reason, listed meanwhile.
      assert.ok((await c.request('defer', ['incoming', paths[0]!, '0.3', '4.4.1 no answer'])).ok);
      const listed = await c.requestList('qlist', ['incoming']);
      const row = listed.items.find((m) => m.params[0] === ids[0])!;
      assert.equal(row.params[2], 'deferred');
      assert.equal(row.params[6], '1');
      assert.equal(row.params[7], '4.4.1 no answer');
      const back = await waitFor(() => pop(c, 'incoming'), 10_000, 50);
      assert.equal(path.basename(back), ids[0]);
      assert.ok(readFileSync(back).equals(bodies[0]!));

      // done: gone for good.
      assert.ok((await c.request('done', ['incoming', back])).ok);
      assert.equal((await c.request('done', ['incoming', back])).ok, false, 'done twice');
      assert.equal((await c.requestRaw('get', ['incoming', ids[0]!])).reply.ok, false);

      // Lease expiry (lease_s 1, never renewed): the message comes back by itself.
      const again = await waitFor(() => pop(c, 'incoming'), 10_000, 50);
      assert.equal(path.basename(again), ids[1]);

      // Abandon: a consumer connection that closes gives its lease back at once.
      const quitter = testClient(cfg, q.addresses.ipc!);
      await waitFor(() => pop(quitter, 'incoming'), 10_000, 50);
      quitter.close();
      const taken = await waitFor(() => pop(c, 'incoming'), 3000, 50);
      assert.ok(ids.includes(path.basename(taken)));

      // Admin: flush (deferred ready now), show (bytes), requeue, delete; a slot shows too.
      assert.ok((await c.request('defer', ['incoming', taken, '3600', 'later'])).ok);
      assert.equal((await c.request('qflush', ['incoming'])).params[0], '1');
      const flushed = (await pop(c, 'incoming'))!;
      assert.equal(path.basename(flushed), path.basename(taken));
      const shown = await c.requestRaw('qshow', [ids[1]!]);
      assert.ok(shown.data!.equals(bodies[1]!));
      assert.ok((await c.request('qrequeue', [path.basename(flushed)])).ok);
      assert.ok((await c.request('qdelete', [ids[1]!])).ok);
      assert.equal((await c.request('qdelete', [ids[1]!])).ok, false);
      const slot = (await c.request('slot', ['incoming'])).params[0]!;
      writeFileSync(slot, 'half written');
      assert.equal((await c.requestRaw('qshow', [path.basename(slot)])).data!.toString(), 'half written');
      assert.equal((await c.requestRaw('get', ['incoming', slot])).reply.ok, false, 'get: not a slot');
      const st = await c.requestList('qstats');
      assert.equal(st.items[0]!.params[4], 'slots=1');
    } finally {
      c.close();
      await q.close();
    }
  });

  test('two instances on one database: mail, alerts and a killed instance\'s lease cross over', async () => {
    const url = await database();
    const a = pgConfig(url, 1);
    const b = pgConfig(url, 1);
    const qa = await startQueued(a.cfg);
    const qb = await startQueued(b.cfg);
    const ca = testClient(a.cfg, qa.addresses.ipc!);
    const cb = testClient(b.cfg, qb.addresses.ipc!);
    const sub = await startSubscriber(`unix://${path.join(b.dir, 'sub.sock')}`, ipcSecret(b.cfg));
    let child: ChildProcess | null = null;
    try {
      // The subscriber of B hears of mail put into A; B's consumer pops it.
      assert.equal(await pop(cb, 'incoming'), null, 'arms B');
      assert.ok((await cb.request('subscribe', ['incoming', sub.address])).ok);
      const body = randomBytes(3000);
      const qid = await put(ca, 'incoming', body);
      await waitFor(() => sub.alerts.length >= 1);
      const got = (await pop(cb, 'incoming'))!;
      assert.equal(path.basename(got), qid);
      assert.equal(path.dirname(got), path.join(b.dir, 'queue', 'incoming', 'cache'));
      assert.ok(readFileSync(got).equals(body));
      // A cannot finish B's lease; B can.
      assert.equal((await ca.request('done', ['incoming', got.replace(b.dir, a.dir)])).ok, false);
      assert.ok((await cb.request('done', ['incoming', got])).ok);
      assert.equal(await pop(ca, 'incoming'), null);

      // A third instance (a process) pops a message and is killed holding the lease: after
      // lease_s the message is ready again, B's subscriber is alerted and B pops it.
      const body2 = randomBytes(1000);
      const qid2 = await push(ca, 'incoming', body2);
      const c3 = pgConfig(url, 1);
      const popped = await new Promise<string>((resolve, reject) => {
        child = spawn(process.execPath, [CHILD, 'pop', c3.dir, url, 'incoming'], { stdio: ['ignore', 'pipe', 'inherit'] });
        createInterface({ input: child.stdout! }).on('line', (l) => (l.startsWith('POPPED ') ? resolve(l.slice(7)) : reject(new Error(l))));
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
      });
      assert.equal(path.basename(popped), qid2);
      const alertsBefore = sub.alerts.length;
      assert.equal(await pop(cb, 'incoming'), null, 'leased by the child (and B armed)');
      (child as ChildProcess | null)?.kill('SIGKILL');
      await waitFor(() => sub.alerts.length > alertsBefore, 15_000);
      const back = (await waitFor(() => pop(cb, 'incoming'), 5000, 50))!;
      assert.equal(path.basename(back), qid2);
      assert.ok(readFileSync(back).equals(body2));
      assert.ok((await cb.request('done', ['incoming', back])).ok);
    } finally {
      (child as ChildProcess | null)?.kill('SIGKILL');
      ca.close();
      cb.close();
      await sub.server.close();
      await qa.close();
      await qb.close();
    }
  });

  test('restart durability: queued and PostgreSQL restarted, every message back; own leases ready at once', async () => {
    const url = await database();
    const { cfg } = pgConfig(url);
    let q: RunningServer = await startQueued(cfg);
    let c = testClient(cfg, q.addresses.ipc!);
    const bodies = Array.from({ length: 20 }, (_, i) => Buffer.from(`message ${i} `.repeat(50 + i)));
    const ids: string[] = [];
    // Concurrent puts share commits; every one answered ok is in the database.
    ids.push(...(await Promise.all(bodies.slice(0, 10).map(async (b) => {
      const own = testClient(cfg, q.addresses.ipc!);
      try {
        return await put(own, 'incoming', b);
      } finally {
        own.close();
      }
    }))));
    for (const b of bodies.slice(10)) ids.push(await push(c, 'incoming', b));
    const leased = (await pop(c, 'incoming'))!;
    const deferred = (await pop(c, 'incoming'))!;
    assert.ok((await c.request('defer', ['incoming', deferred, '3600', 'later'])).ok);
    c.close();
    await q.close();
    await pgs.stop();
    await pgs.start();

    q = await startQueued(cfg);
    c = testClient(cfg, q.addresses.ipc!);
    try {
      const listed = await c.requestList('qlist', ['incoming']);
      const byId = new Map(listed.items.map((m) => [m.params[0]!, m.params]));
      assert.equal(byId.size, 20);
      assert.equal(byId.get(path.basename(leased))![2], 'ready', 'our own lease of the last run is back at once');
      assert.equal(byId.get(path.basename(deferred))![2], 'deferred');
      assert.equal(byId.get(path.basename(deferred))![6], '1');
      const seen = new Set<string>();
      for (;;) {
        const p = await pop(c, 'incoming');
        if (!p) break;
        const i = ids.indexOf(path.basename(p));
        assert.ok(i >= 0 && readFileSync(p).equals(bodies[i]!), `message ${i} intact`);
        seen.add(path.basename(p));
        assert.ok((await c.request('done', ['incoming', p])).ok);
        assert.ok(seen.size <= 20);
      }
      assert.equal(seen.size, 19, 'all but the deferred one');
    } finally {
      c.close();
      await q.close();
    }
  });

  test('a consumer popping while puts commit always reads whole cache copies', async () => {
    const url = await database();
    const { cfg } = pgConfig(url);
    const q = await startQueued(cfg);
    const c = testClient(cfg, q.addresses.ipc!);
    const N = 400;
    const bodies = new Map<string, Buffer>();
    try {
      const putters = Array.from({ length: 10 }, async () => {
        const own = testClient(cfg, q.addresses.ipc!);
        for (let i = 0; i < N / 10; i++) {
          const b = randomBytes(1000 + Math.floor(Math.random() * 20_000));
          const s = (await own.request('slot', ['incoming'])).params[0]!;
          bodies.set(path.basename(s), b);
          assert.ok((await own.store('put', ['incoming', s, String(b.length)], b)).ok);
        }
        own.close();
      });
      let seen = 0;
      const consumer = (async () => {
        const deadline = Date.now() + 60_000;
        while (seen < N && Date.now() < deadline) {
          const p = await pop(c, 'incoming');
          if (!p) {
            await new Promise((r) => setImmediate(r));
            continue;
          }
          // Read at once, as the router does: the bytes must be complete and the ones put.
          assert.ok(readFileSync(p).equals(bodies.get(path.basename(p))!), `copy of ${path.basename(p)}`);
          assert.ok((await c.request('done', ['incoming', p])).ok);
          seen++;
        }
      })();
      await Promise.all([...putters, consumer]);
      assert.equal(seen, N);
    } finally {
      c.close();
      await q.close();
    }
  });

  test('PostgreSQL restarted under a running queued: 4.3.0 while it is down, then puts and alerts work again', async () => {
    const url = await database();
    const { cfg, dir } = pgConfig(url);
    const q = await startQueued(cfg);
    const c = testClient(cfg, q.addresses.ipc!);
    const sub = await startSubscriber(`unix://${path.join(dir, 'sub.sock')}`, ipcSecret(cfg));
    try {
      assert.ok((await c.request('subscribe', ['incoming', sub.address])).ok);
      assert.equal(await pop(c, 'incoming'), null);
      await pgs.stop();
      const slot = (await c.request('slot', ['incoming'])).params[0]!;
      const data = Buffer.from('Subject: while down\r\n\r\nhi\r\n');
      const down = await c.store('put', ['incoming', slot, String(data.length)], data);
      assert.equal(down.ok, false);
      assert.match(down.params[0]!, /^4\.3\.0 /);
      await pgs.start();
      // The slot is still open after the refusal: the same put goes through once the database is back.
      await waitFor(async () => (await c.store('put', ['incoming', slot, String(data.length)], data)).ok, 20_000, 200);
      await waitFor(() => sub.alerts.length >= 1, 15_000);
      const p = (await pop(c, 'incoming'))!;
      assert.ok(readFileSync(p).equals(data));
      assert.ok((await c.request('done', ['incoming', p])).ok);
    } finally {
      c.close();
      await sub.server.close();
      await q.close();
    }
  });

  test('fmail start on the postgres queue: SMTP in, router and mailboxd through it, Maildir out', async () => {
    const url = await database();
    const t = tempDir('fmail-queued-pg-e2e-');
    dirs.push(t);
    const user = 'pg@fancymail.test';
    writeFileSync(path.join(t.dir, 'users'), `${user}:{PLAIN}secret::::::\n`);
    const setup = await writeFmailConfig(t.dir, `[queued]\nbackend = "postgres"\npostgres_url = ${JSON.stringify(url)}\n`);
    const fm = await startFmail(setup);
    const mailer = nodemailer.createTransport({ host: '127.0.0.1', port: setup.ports.smtp, secure: false, ignoreTLS: true, pool: false });
    try {
      const big = 'x'.repeat(78) + '\r\n';
      for (let i = 0; i < 4; i++) {
        // One over smtpd's put limit (1 MiB): slot + file + push, read into the row.
        const body = i === 3 ? big.repeat(20_000) : `hello ${i}\r\n`;
        await mailer.sendMail({ envelope: { from: 'a@remote.test', to: [user] }, raw: `From: <a@remote.test>\r\nTo: <${user}>\r\nSubject: pg ${i}\r\n\r\n${body}` });
      }
      const newDir = path.join(t.dir, 'mail', user, 'new');
      await waitFor(() => readdirSync(newDir, { withFileTypes: true }).filter((e) => e.isFile()).length >= 4, 30_000, 50);
      const subjects = readdirSync(newDir).map((f) => /Subject: (pg \d)/.exec(readFileSync(path.join(newDir, f), 'latin1'))?.[1]).sort();
      assert.deepEqual(subjects, ['pg 0', 'pg 1', 'pg 2', 'pg 3']);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await waitFor(async () => Number((await c.query('SELECT count(*) AS n FROM fmail_queue_message')).rows[0].n) === 0, 10_000, 50);
      await c.end();
    } finally {
      mailer.close();
      await fm.stop();
    }
  });
});
