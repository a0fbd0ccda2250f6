// Several hosts, no shared disk (issue 18): four hosts as network namespaces (multihost-net.ts;
// distinct loopback addresses where namespaces cannot be made), each with its own data folder:
//   mx1, mx2  smtpd + pop3d            (queue_colocated = false: every message goes with `put`)
//   core      queued on PostgreSQL, router, smtp-out (queue_colocated = false: bytes by `get`)
//   store     authd + mailboxd
//   store2    mailboxd only: bob's mailbox host (`mailhost=` in the users file, issue 18)
// IPC between hosts over TCP with a shared secret. Mail sent to both MX hosts (small, 8-bit,
// dot-lines, one of 1.5 MiB) is delivered once and read back byte-exact over POP3 from both MX
// hosts. FMAIL_TEST_NO_NETNS=1 forces the loopback layout.
// PostgreSQL (test/helpers/postgres.ts) is reached over its Unix socket: the database is the
// core host's external component, not a folder the FancyMail hosts share.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { NO_POSTGRES, type TestPostgres, startPostgres } from '../helpers/postgres.js';
import { fmailAsync } from '../helpers/fmail-process.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { type Net, stopAll } from './multihost-net.js';
import { HOSTS, PASSWORD, SERVERS, message, pop3All, smtpSend, startLayout } from './multihost-setup.js';

describe('several hosts, no shared disk', { skip: NO_POSTGRES }, () => {
  const tmp = tempDir('fmail-multihost-');
  let pg: TestPostgres;
  let netw: Net;
  let configs: Map<string, string>;

  before(async () => {
    pg = await startPostgres();
    ({ netw, configs } = await startLayout(tmp.dir, pg));
  });

  after(async () => {
    if (netw) {
      await stopAll(netw).catch(() => undefined);
      netw.cleanup();
    }
    await pg?.cleanup();
    tmp.cleanup();
  });

  test("a user's mail goes to its mailbox host (users file mailhost=), read back over POP3", { timeout: 120_000 }, async () => {
    const mx1 = netw.hosts.get('mx1')!.addr;
    const mx2 = netw.hosts.get('mx2')!.addr;
    const sent = [0, 1, 2, 3].map((i) => Buffer.from(`From: sender@outside.test\r\nTo: bob@example.test\r\nSubject: bob-${i}\r\n\r\nfor bob ${i}\r\n`, 'latin1'));
    await Promise.all(sent.map((m, i) => smtpSend(i % 2 ? mx2 : mx1, 2525, 'bob@example.test', m)));
    const got = await waitFor(
      async () => {
        const all = await pop3All(mx2, 1110, 'bob@example.test', PASSWORD);
        return all.length >= sent.length ? all : null;
      },
      60_000,
      200,
    );
    assert.equal(got.length, sent.length);
    for (const m of sent) assert.equal(got.filter((g) => g.subarray(g.length - m.length).equals(m)).length, 1);
    const maildirs = (host: string): string[] => {
      const d = path.join(netw.hosts.get(host)!.dir, 'mail');
      return existsSync(d) ? readdirSync(d) : [];
    };
    assert.ok(maildirs('store2').some((u) => u.startsWith('bob')), `bob's Maildir on store2: ${maildirs('store2').join(',')}`);
    assert.ok(!maildirs('store').some((u) => u.startsWith('bob')), `no Maildir of bob on store: ${maildirs('store').join(',')}`);
  });

  test('mail to both MX hosts is delivered once, byte-exact over POP3 from either', { timeout: 120_000 }, async (t) => {
    t.diagnostic(`hosts on ${netw.kind}: ${[...netw.hosts.values()].map((h) => `${h.name}=${h.addr}`).join(' ')}`);
    const mx1 = netw.hosts.get('mx1')!.addr;
    const mx2 = netw.hosts.get('mx2')!.addr;
    const sent = new Map<string, Buffer>();
    const eightBit = Buffer.from('caf\xe9 \xfc\r\n', 'latin1').toString('latin1');
    for (let i = 0; i < 20; i++) {
      const token = `mh-${i}`;
      const msg = message(token, `line one\r\n.a dot line\r\n${i % 3 === 0 ? eightBit : ''}end ${i}\r\n`);
      sent.set(token, msg);
    }
    // Over smtpd's 1 MiB put limit of a co-located queue: still one `put` (no slot file to write).
    const big = message('mh-big', `${'x'.repeat(998)}\r\n`.repeat(1500));
    sent.set('mh-big', big);
    await Promise.all([...sent].map(([token, msg], i) => smtpSend(i % 2 ? mx2 : mx1, 2525, 'alice@example.test', msg).then(() => token)));

    const got = await waitFor(
      async () => {
        const all = await pop3All(mx1, 1110, 'alice@example.test', PASSWORD);
        return all.length >= sent.size ? all : null;
      },
      60_000,
      200,
    );
    assert.equal(got.length, sent.size, 'each message once');
    for (const [token, msg] of sent) {
      const copies = got.filter((m) => m.includes(Buffer.from(`Subject: ${token}\r\n`)));
      assert.equal(copies.length, 1, `${token} delivered once`);
      assert.ok(copies[0]!.subarray(copies[0]!.length - msg.length).equals(msg), `${token} byte-exact`);
    }
    // The same mailbox through the other MX host's pop3d.
    const again = await pop3All(mx2, 1110, 'alice@example.test', PASSWORD);
    assert.equal(again.length, sent.size);

    // No host but core has a queue folder: nobody wrote into queued's spool from afar.
    // The router read the messages through `get` (its copy folder), not in queued's spool.
    assert.ok(existsSync(path.join(netw.hosts.get('core')!.dir, 'router', 'queue-copies')));
    for (const name of ['mx1', 'mx2', 'store', 'store2']) assert.equal(existsSync(path.join(netw.hosts.get(name)!.dir, 'queue')), false, `${name} has no queue folder`);
  });

  test("fmail status on one host lists every host's servers; fmail trace follows a message across hosts", { timeout: 120_000 }, async () => {
    // Status from mx1's configuration: the directory queued keeps (every process announces itself).
    const status = await waitFor(
      async () => {
        const r = await fmailAsync(['status', '-c', configs.get('mx1')!]);
        const missing = HOSTS.flatMap((h) => SERVERS[h]!.filter((srv) => !new RegExp(`^${srv} +up +${h}\\.fancymail\\.test `, 'm').test(r.stdout)).map((srv) => `${h}/${srv}`));
        return r.status === 0 && missing.length === 0 ? r.stdout : null;
      },
      45_000,
      500,
    ).catch(async () => {
      const r = await fmailAsync(['status', '-c', configs.get('mx1')!]);
      throw new Error(`status never listed every host's servers up (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    });
    assert.match(status, new RegExp(`^smtpd +up +mx2\\.fancymail\\.test +smtp=${netw.hosts.get('mx2')!.addr.replace(/\./g, '\\.')}:2525 .*220 `, 'm'));

    const mx2 = netw.hosts.get('mx2')!;
    const done = await smtpSend(mx2.addr, 2525, 'alice@example.test', message('traced', 'follow me\r\n'));
    const qid = /queued as (\S+)/.exec(done)?.[1];
    assert.ok(qid, done);
    // Each host keeps its own log; trace merges them, each line saying which host wrote it.
    const logs = ['mx2', 'core', 'store'].map((h) => path.join(netw.hosts.get(h)!.dir, 'fmail.log'));
    const trace = await waitFor(
      async () => {
        const r = await fmailAsync(['trace', qid, '-c', configs.get('core')!, ...logs.flatMap((l) => ['--log', l])]);
        const events = ['smtpd.queued', 'queued.push', 'router.delivered', 'mailboxd.stored'];
        return r.status === 0 && events.every((e) => r.stdout.includes(e)) ? r.stdout : null;
      },
      30_000,
      250,
    );
    const lineOf = (event: string): string => trace.split('\n').find((l) => l.includes(event)) ?? '';
    assert.match(lineOf('smtpd.queued'), /mx2\.fancymail\.test +smtpd/, trace);
    assert.match(lineOf('queued.push'), /core\.fancymail\.test +queued/, trace);
    assert.match(lineOf('router.delivered'), /core\.fancymail\.test +router/, trace);
    assert.match(lineOf('mailboxd.stored'), /store\.fancymail\.test +mailboxd/, trace);
    // Merged in time order across hosts: queued first, the store no later than the router's delivered.
    const at = (e: string): string => lineOf(e).split(' ')[0]!;
    assert.ok(at('queued.push') <= at('mailboxd.stored') && at('mailboxd.stored') <= at('router.delivered'), `time order:\n${trace}`);
    assert.ok(trace.indexOf('queued.push') < trace.indexOf('mailboxd.stored'), trace);
  });

  test('a host stopped cleanly leaves the directory; status stays green', { timeout: 60_000 }, async () => {
    const mx2 = netw.hosts.get('mx2')!;
    const proc = mx2.procs[mx2.procs.length - 1]!;
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    const out = await waitFor(
      async () => {
        const r = await fmailAsync(['status', '-c', configs.get('mx1')!]);
        return r.status === 0 && !r.stdout.includes('mx2.fancymail.test') && r.stdout.includes('mx1.fancymail.test') ? r.stdout : null;
      },
      20_000,
      250,
    );
    assert.match(out, /^queued +up +core\.fancymail\.test /m);
  });
});
