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

  /** fill - a new folder with these messages, selected. */
  async function fill(folder: string, msgs: string[]): Promise<void> {
    await c.ok(`CREATE ${folder}`);
    for (const m of msgs) h.store.deliver(ALICE, m.replace(/\n/g, '\r\n'), folder);
    await c.ok(`SELECT ${folder}`);
  }

  it('sort-subject, sort-addresses, sort-display-from, esort: SORT by base subject, address and display name; ESORT RETURN', async () => {
    await fill('sorting', [
      'Subject: Re: [list] b\nFrom: Zed <a@x.org>\nDate: Fri, 22 Feb 2008 02:00:00 +0200\n\n1\n',
      'Subject: [fwd: A (fwd)]\nFrom: =?iso-8859-1?q?Al_B?= <z@x.org>\nDate: Fri, 22 Feb 2008 00:00:00 +0000\n\n22\n',
      'Subject: b\nFrom: m@x.org\n\n333\n',
      `Subject: =?utf-8?q?RE:_Fw:_a?=\nFrom: grp: q@x.org;\nDate: 21 Feb 2008 23:00 -0100\n\n${'4'.repeat(100)}\n`,
    ]);
    // Base subjects: b, a, b, a; ties by message number, also under REVERSE.
    assert.deepEqual((await c.ok('SORT (SUBJECT) UTF-8 ALL')).untagged, ['* SORT 2 4 1 3']);
    assert.deepEqual((await c.ok('SORT (REVERSE SUBJECT) UTF-8 ALL')).untagged, ['* SORT 1 3 2 4']);
    assert.deepEqual((await c.ok('SORT (SUBJECT REVERSE SIZE) UTF-8 ALL')).untagged, ['* SORT 4 2 1 3']);
    // FROM: local part a, z, m, grp; DISPLAYFROM: Zed, Al B, m@x.org, grp.
    assert.deepEqual((await c.ok('SORT (FROM) US-ASCII ALL')).untagged, ['* SORT 1 4 3 2']);
    assert.deepEqual((await c.ok('SORT (DISPLAYFROM) US-ASCII ALL')).untagged, ['* SORT 2 4 3 1']);
    // DATE: the Date header in UTC (3 has none: its arrival, the latest).
    assert.deepEqual((await c.ok('SORT (DATE) US-ASCII ALL')).untagged, ['* SORT 1 2 4 3']);
    const uids = (await c.ok('UID SORT (SIZE) US-ASCII 2:4')).untagged;
    assert.match(uids[0]!, /^\* SORT [0-9]+ [0-9]+ [0-9]+$/);
    const es = await c.ok('SORT RETURN (MIN MAX COUNT ALL) (REVERSE SIZE) US-ASCII ALL');
    // Sizes: 4 > 2 > 1 > 3.
    assert.deepEqual(es.untagged, [`* ESEARCH (TAG "${es.done.split(' ')[0]}") MIN 4 MAX 3 ALL 4,2,1,3 COUNT 4`]);
    assert.match((await c.command('SORT (NOPE) US-ASCII ALL')).done, /BAD/);
    assert.match((await c.command('SORT (SUBJECT) KOI8-R ALL')).done, /NO \[BADCHARSET/);
  });

  it('thread, thread2, thread6, thread-orderedsubject: THREAD REFERENCES and ORDEREDSUBJECT', async () => {
    await fill('threads', [
      'Message-ID: <a@x>\nSubject: start\n\n1\n',
      'Message-ID: <b@x>\nReferences: <a@x>\nSubject: Re: start\n\n2\n',
      'Message-ID: <c@x>\nReferences: <b@x>\n\n3\n',
      'Message-ID: <b@x>\nReferences: <a@x>\n\n4 (a repeated Message-ID)\n',
      'References: <gone@x>\nSubject: other\n\n5\n',
      'References: <gone@x>\n\n6\n',
      'Subject: Re: other\n\n7\n',
    ]);
    // 5 and 6 share a missing parent (a dummy with two children); 7 joins "other" by subject.
    assert.deepEqual((await c.ok('THREAD REFERENCES US-ASCII ALL')).untagged, ['* THREAD (1 (2 3)(4))((5)(6)(7))']);
    assert.deepEqual((await c.ok('THREAD ORDEREDSUBJECT US-ASCII ALL')).untagged, ['* THREAD (1 2)(3 (4)(6))(5 7)']);
    assert.deepEqual((await c.ok('THREAD REFERENCES US-ASCII 7:*')).untagged, ['* THREAD (7)']);
    await c.ok('STORE 2 +FLAGS.SILENT (\\Deleted)');
    await c.ok('EXPUNGE');
    // Now 4 (was 5's repeat of <b@x>) is the first with <b@x>: 3 hangs below it.
    assert.deepEqual((await c.ok('THREAD REFERENCES US-ASCII 1:3')).untagged, ['* THREAD (1 3 2)']);
  });

  const lit = (m: string, binary = false): string => `${binary ? '~' : ''}{${Buffer.byteLength(m)}+}\r\n${m}`;

  it('multiappend: several messages in one APPEND, all stored or none', async () => {
    await c.ok('CREATE multi');
    const r = await c.ok(`APPEND multi ${lit('Subject: one\r\n\r\n1\r\n')} (\\Seen) ${lit('Subject: two\r\n\r\n2\r\n')}`);
    assert.match(r.done, /OK \[APPENDUID [0-9]+ 1:2\]/);
    // The second is empty: neither is stored.
    assert.match((await c.command(`APPEND multi ${lit('Subject: three\r\n\r\n3\r\n')} {0+}\r\n`)).done, /NO/);
    await c.ok('SELECT multi');
    const f = await c.ok('FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    assert.equal(f.untagged.length, 2);
    assert.match(f.untagged[1]!, /^\* 2 FETCH \(FLAGS \(\\Seen( \\Recent)?\) BODY\[HEADER\.FIELDS \(SUBJECT\)\] \{16\}\r\nSubject: two\r\n\r\n\)$/);
  });

  it('catenate: a message from TEXT parts and URLs of stored messages; bad URLs are NO [BADURL]', async () => {
    await c.ok('CREATE cat');
    const first = await c.ok(`APPEND cat ${lit('From: a@x\r\nSubject: src\r\n\r\nsource body\r\n')}`);
    const [, uidv, uid] = /APPENDUID ([0-9]+) ([0-9]+)/.exec(first.done)!;
    const r = await c.ok(`APPEND cat CATENATE (URL "/cat;UIDVALIDITY=${uidv}/;UID=${uid}/;SECTION=HEADER" TEXT ${lit('new body\r\n')} URL "/cat/;uid=${uid}/;section=text/;partial=7.4")`);
    assert.match(r.done, /OK \[APPENDUID [0-9]+ 2\]/);
    await c.ok('SELECT cat');
    const f = await c.ok('FETCH 2 BODY.PEEK[]');
    assert.ok(f.untagged[0]!.endsWith('\r\nFrom: a@x\r\nSubject: src\r\n\r\nnew body\r\nbody)'), f.untagged[0]);
    assert.match((await c.command(`APPEND cat CATENATE (URL "/cat;UIDVALIDITY=${Number(uidv) + 1}/;UID=${uid}")`)).done, /NO \[BADURL "/);
    assert.match((await c.command(`APPEND cat CATENATE (URL "/cat/;UID=999")`)).done, /NO \[BADURL/);
    assert.match((await c.command(`APPEND cat CATENATE (URL "imap://other@host/cat/;UID=${uid}")`)).done, /NO \[BADURL/);
    // A missing target is TRYCREATE even with a bad URL in the parts.
    assert.match((await c.command(`APPEND nothere CATENATE (URL "/cat/;UID=999")`)).done, /NO \[TRYCREATE\]/);
  });

  it('fetch-binary-mime-*, append-binary: BINARY[] decodes base64 and quoted-printable; literal8 content is stored as base64', async () => {
    await c.ok('CREATE bin');
    const mime = 'Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\n bG8= \r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nfoo  \r\nba=\r\nr=3D\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n';
    await c.ok(`APPEND bin ${lit(mime)}`);
    await c.ok(`APPEND bin ${lit('Content-Transfer-Encoding: binary\r\n\r\na\0b\nc', true)}`);
    await c.ok('SELECT bin');
    const f = await c.ok('FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[2]<3.3>)');
    assert.equal(f.untagged[0], '* 1 FETCH (BINARY.SIZE[1] 5 BINARY[1] {5}\r\nhello BINARY[2] {9}\r\nfoo\r\nbar= BINARY[2]<3> {3}\r\n\r\nb)');
    assert.match((await c.command('FETCH 1 BINARY.PEEK[3]')).done, /NO \[UNKNOWN-CTE\]/);
    // The literal8 message: BODY[1] is base64 now, BINARY[1] the bytes sent (a literal8 for the NUL).
    const g = await c.ok('FETCH 2 (BODY.PEEK[1] BINARY.PEEK[1] BODY.PEEK[HEADER])');
    assert.equal(g.untagged[0], '* 2 FETCH (BODY[1] {10}\r\nYQBiCmM=\r\n BINARY[1] ~{5}\r\na\0b\nc BODY[HEADER] {37}\r\nContent-Transfer-Encoding: base64\r\n\r\n)');
  });

  it('search-context-update*, search-partial: SEARCH RETURN (UPDATE) sends ADDTO/REMOVEFROM (before EXPUNGE); PARTIAL', async () => {
    await fill('ctx', [0, 1, 2, 3, 4].map((i) => `Subject: s${i}\n\nbody ${i}\n`));
    const seen = await c.ok('SEARCH RETURN (UPDATE) SEEN');
    const t1 = seen.done.split(' ')[0]!;
    assert.deepEqual(seen.untagged, [`* ESEARCH (TAG "${t1}")`]);
    const unseen = await c.ok('UID SEARCH RETURN (UPDATE COUNT) UNSEEN');
    const t2 = unseen.done.split(' ')[0]!;
    assert.deepEqual(unseen.untagged, [`* ESEARCH (TAG "${t2}") UID COUNT 5`]);
    const st = await c.ok('STORE 1,2,4 +FLAGS (\\Seen)');
    assert.deepEqual(st.untagged.slice(3), [`* ESEARCH (TAG "${t1}") ADDTO (0 1:2,4)`, `* ESEARCH (TAG "${t2}") UID REMOVEFROM (0 1:2,4)`]);
    await c.ok('STORE 1 +FLAGS.SILENT (\\Deleted)');
    assert.deepEqual((await c.ok('EXPUNGE')).untagged, [`* ESEARCH (TAG "${t1}") REMOVEFROM (0 1)`, '* 1 EXPUNGE']);
    // Another session's change reaches us too.
    const other = await ImapTestClient.connect(h.port);
    await other.ok(LOGIN);
    await other.ok('SELECT ctx');
    await other.ok('UID STORE 2 -FLAGS.SILENT (\\Seen)');
    other.close();
    let got: string[] = [];
    for (let i = 0; i < 50 && !got.some((l) => l.includes('ADDTO')); i++) got = got.concat((await c.ok('NOOP')).untagged);
    assert.ok(got.includes(`* ESEARCH (TAG "${t1}") REMOVEFROM (0 1)`), got.join('|'));
    assert.ok(got.includes(`* ESEARCH (TAG "${t2}") UID ADDTO (0 2)`), got.join('|'));
    await c.ok(`CANCELUPDATE "${t1}"`);
    assert.match((await c.command(`CANCELUPDATE "${t1}"`)).done, /NO/);
    assert.deepEqual((await c.ok('STORE 2 +FLAGS.SILENT (\\Seen)')).untagged, [`* ESEARCH (TAG "${t2}") UID REMOVEFROM (0 3)`]);
    const p = await c.ok('SEARCH RETURN (PARTIAL 3:2 COUNT MIN) ALL');
    assert.match(p.untagged[0]!, /^\* ESEARCH \(TAG "t[0-9]+"\) MIN 1 PARTIAL \(2:3 2:3\) COUNT 4$/);
    assert.match((await c.ok('SEARCH RETURN (PARTIAL 5:9) ALL')).untagged[0]!, /PARTIAL \(5:9 NIL\)$/);
    assert.match((await c.command('SEARCH RETURN (PARTIAL 1:*) ALL')).done, /BAD/);
  });

  it('QRESYNC (notify needs it): SELECT with QRESYNC reports what was missed; VANISHED for expunges', async () => {
    await fill('qr', [1, 2, 3, 4, 5].map((i) => `Subject: q${i}\n\n${i}\n`));
    const sel = await c.ok('SELECT qr (CONDSTORE)');
    const uidv = Number(/UIDVALIDITY ([0-9]+)/.exec(sel.untagged.join('\n'))![1]);
    const hms = Number(/HIGHESTMODSEQ ([0-9]+)/.exec(sel.untagged.join('\n'))![1]);
    await c.ok('UNSELECT');
    // Meanwhile: message UID 2 expunged, UID 4 flagged.
    const other = await ImapTestClient.connect(h.port);
    await other.ok(LOGIN);
    await other.ok('SELECT qr');
    await other.ok('UID STORE 2 +FLAGS.SILENT (\\Deleted)');
    await other.ok('UID EXPUNGE 2');
    await other.ok('UID STORE 4 +FLAGS.SILENT (\\Flagged)');
    other.close();
    assert.match((await c.command(`SELECT qr (QRESYNC (${uidv} ${hms}))`)).done, /BAD/, 'QRESYNC must be enabled first');
    assert.deepEqual((await c.ok('ENABLE QRESYNC')).untagged, ['* ENABLED QRESYNC']);
    const r = await c.ok(`SELECT qr (QRESYNC (${uidv} ${hms} 1:5))`);
    const tail = r.untagged.slice(r.untagged.findIndex((l) => l.startsWith('* VANISHED')));
    assert.equal(tail[0], '* VANISHED (EARLIER) 2');
    assert.match(tail[1]!, /^\* 3 FETCH \(UID 4 FLAGS \(\\Flagged\) MODSEQ \([0-9]+\)\)$/);
    assert.equal(tail.length, 2);
    // Expunges are VANISHED now; FETCH responses carry the UID.
    await c.ok('STORE 1 +FLAGS.SILENT (\\Deleted)');
    const ex = await c.ok('EXPUNGE');
    assert.deepEqual(ex.untagged, ['* VANISHED 1']);
    assert.match(ex.done, /OK \[HIGHESTMODSEQ [0-9]+\]/);
    assert.match((await c.ok('FETCH 1 FLAGS')).untagged[0]!, /^\* 1 FETCH \(UID 3 FLAGS/);
    const v = await c.ok(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${hms} VANISHED)`);
    assert.equal(v.untagged[0], '* VANISHED (EARLIER) 1:2');
    assert.match((await c.command('FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)')).done, /BAD/);
    // Without the history of expunges, every UID below UIDNEXT that is not there is VANISHED.
    const { SeqMatcher } = await import('../../src/imapd/sequence.js');
    assert.equal(new SeqMatcher([[1, Infinity]], 9).missing([3, 4, 8], 9), '1:2,5:7,9');
    assert.equal(new SeqMatcher([[2, 5], [7, 4294967295]], 4294967295).missing([3, 10], 12), '2,4:5,7:9,11:12');
  });

  it('notify: NOTIFY SET STATUS answers at once; changes elsewhere are pushed between commands', async () => {
    await c.ok('CREATE nt1');
    await c.ok('CREATE nt2');
    h.store.deliver(ALICE, 'Subject: n\r\n\r\nn\r\n', 'nt2');
    const st = (await c.ok('STATUS nt2 (UIDVALIDITY UIDNEXT)')).untagged[0]!;
    const uidv = /UIDVALIDITY ([0-9]+)/.exec(st)![1];
    assert.deepEqual((await c.ok('NOTIFY SET STATUS (MAILBOXES nt2 (MessageExpunge))')).untagged, ['* STATUS "nt2" (MESSAGES 1)']);
    assert.deepEqual((await c.ok('NOTIFY SET STATUS (MAILBOXES nt2 (MessageNew))')).untagged, [`* STATUS "nt2" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ${uidv})`]);
    assert.match((await c.ok('NOTIFY SET STATUS (MAILBOXES nt2 (FlagChange))')).untagged[0]!, new RegExp(`^\\* STATUS "nt2" \\(UIDVALIDITY ${uidv} HIGHESTMODSEQ [0-9]+\\)$`));
    assert.deepEqual((await c.ok('NOTIFY SET (MAILBOXES nt2 (MessageNew MessageExpunge FlagChange))')).untagged, []);
    // Now: a delivery to nt2 and a folder another session creates reach us with no command sent.
    await c.ok('SELECT nt1');
    await c.ok('NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) (PERSONAL (MessageNew MessageExpunge MailboxName))');
    h.store.deliver(ALICE, 'Subject: m\r\n\r\nm\r\n', 'nt2');
    assert.equal(await c.response(), `* STATUS "nt2" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY ${uidv})`);
    h.store.deliver(ALICE, 'Subject: s\r\n\r\ns\r\n', 'nt1');
    const pushed = [await c.response(), await c.response(), await c.response()];
    assert.deepEqual(pushed.slice(0, 2), ['* 1 EXISTS', '* 1 RECENT']);
    // (MODSEQ too: this connection enabled CONDSTORE earlier.)
    assert.match(pushed[2]!, /^\* 1 FETCH \(UID 1 FLAGS \(\\Recent\)( MODSEQ \([0-9]+\))?\)$/);
    const other = await ImapTestClient.connect(h.port);
    await other.ok(LOGIN);
    await other.ok('CREATE nt3');
    other.close();
    assert.equal(await c.response(), '* LIST () "." "nt3"');
    await c.ok('NOTIFY NONE');
    assert.match((await c.command('NOTIFY SET (INBOXES (AnnotationChange))')).done, /NO \[BADEVENT \(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange\)\]/);
    assert.match((await c.command('NOTIFY SET (NOWHERE (MessageNew))')).done, /BAD/);
  });
});
