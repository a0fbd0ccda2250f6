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
import { tempDir, waitFor } from '../helpers/tmp.js';
import { type Net, stopAll } from './multihost-net.js';
import { PASSWORD, message, pop3All, smtpSend, startLayout } from './multihost-setup.js';

describe('several hosts, no shared disk', { skip: NO_POSTGRES }, () => {
  const tmp = tempDir('fmail-multihost-');
  let pg: TestPostgres;
  let netw: Net;

  before(async () => {
    pg = await startPostgres();
    ({ netw } = await startLayout(tmp.dir, pg));
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
});
