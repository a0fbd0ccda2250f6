// Behaviours Dovecot's imaptest scripted groups check (tests named after the group), over
// the in-memory store: each failed against imapd before its fix.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ALICE, ALICE_PW, type Harness, startHarness } from './harness.js';
import { ImapTestClient } from './imap-client.js';

const LOGIN = `LOGIN ${ALICE} "${ALICE_PW.replace(/[\\"]/g, '\\$&')}"`;

describe('imapd: cases from imaptest', () => {
  let h: Harness;
  let c: ImapTestClient;
  before(async () => {
    h = await startHarness();
    c = await ImapTestClient.connect(h.port);
    await c.ok(LOGIN);
  });
  after(async () => {
    c.close();
    await h.close();
  });

  it('subscribe: LSUB with % shows an unsubscribed parent of a subscribed folder as \\Noselect', async () => {
    for (const n of ['t.a', 't.b.x', 't.c.y']) await c.ok(`CREATE ${n}`);
    for (const n of ['t.a', 't.b.x', 't.c.y']) await c.ok(`SUBSCRIBE ${n}`);
    const r = await c.ok('LSUB "" t.%');
    assert.deepEqual(r.untagged.map((l) => l.replace(/\\Has(No)?Children ?/, '').replace(' )', ')')), [
      '* LSUB () "." "t.a"',
      '* LSUB (\\Noselect) "." "t.b"',
      '* LSUB (\\Noselect) "." "t.c"',
    ]);
    // With * the subscribed folders match themselves: no parent lines.
    const all = await c.ok('LSUB "" t.*');
    assert.deepEqual(all.untagged.map((l) => /"([^"]*)"$/.exec(l)![1]), ['t.a', 't.b.x', 't.c.y']);
  });

  it('listext: LIST (SUBSCRIBED RECURSIVEMATCH) gives CHILDINFO to parents of subscribed folders the pattern misses', async () => {
    for (const n of ['r.p', 'r.p.q', 'r.p.z']) await c.ok(`CREATE ${n}`);
    await c.ok('SUBSCRIBE r.p.q');
    const one = await c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" r.% RETURN (CHILDREN)');
    assert.deepEqual(one.untagged, ['* LIST (\\HasChildren) "." "r.p" ("CHILDINFO" ("SUBSCRIBED"))']);
    // When the subscribed child is listed itself, the parent is not.
    const both = await c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" (r.p r.p.q)');
    assert.deepEqual(both.untagged, ['* LIST (\\HasNoChildren \\Subscribed) "." "r.p.q"']);
    // Without RECURSIVEMATCH only subscribed folders come back.
    const plain = await c.ok('LIST (SUBSCRIBED) "" r.%');
    assert.deepEqual(plain.untagged, []);
  });

  it('search-addresses: FROM matches the parsed address, comments inside it ignored', async () => {
    h.store.deliver(ALICE, 'From: <user-from (comment)@ (comment) domain.org>\r\nTo: grp: g1@d1.org;\r\n\r\nbody\r\n', 'INBOX');
    h.store.deliver(ALICE, 'From: RealFrom <other@domain.org>\r\n\r\nbody\r\n', 'INBOX');
    await c.ok('SELECT INBOX');
    assert.deepEqual((await c.ok('SEARCH FROM user-from@domain.org')).untagged, ['* SEARCH 1']);
    assert.deepEqual((await c.ok('SEARCH FROM "realfrom <other@"')).untagged, ['* SEARCH 2']);
    assert.deepEqual((await c.ok('SEARCH TO g1@d1.org')).untagged, ['* SEARCH 1']);
  });

  it('stress: FETCH of a message another session expunged is NO [EXPUNGEISSUED] in the words clients know', async () => {
    // imaptest (stress mode) takes a FETCH NO as a benign race only with Dovecot's wording.
    await c.ok('CREATE gone');
    h.store.deliver(ALICE, 'Subject: keep\r\n\r\nkeep\r\n', 'gone');
    h.store.deliver(ALICE, 'Subject: drop\r\n\r\ndrop\r\n', 'gone');
    await c.ok('SELECT gone');
    const other = await ImapTestClient.connect(h.port);
    await other.ok(LOGIN);
    await other.ok('SELECT gone');
    await other.ok('STORE 2 +FLAGS.SILENT (\\Deleted)');
    await other.ok('EXPUNGE');
    other.close();
    const r = await c.command('FETCH 1:2 BODY.PEEK[TEXT]');
    assert.ok(r.untagged.some((l) => l.startsWith('* 1 FETCH (BODY[TEXT]')), 'the message still there is sent');
    assert.match(r.done, /^t[0-9]+ NO \[EXPUNGEISSUED\] Some of the requested messages no longer exist/);
  });
});
