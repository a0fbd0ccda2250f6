// imapd's protocol rules over the in-memory store: states, limits, TLS policy, isolation,
// several sessions on one mailbox, IDLE.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ALICE, ALICE_PW, BOB, type Harness, startHarness } from './harness.js';
import { ImapTestClient } from './imap-client.js';

const MSG = (n: number): string => `From: bob@example.net\r\nTo: ${ALICE}\r\nSubject: note ${n}\r\n\r\nbody ${n}\r\n`;
const LOGIN = `LOGIN ${ALICE} "${ALICE_PW.replace(/[\\"]/g, '\\$&')}"`;

async function loggedIn(h: Harness): Promise<ImapTestClient> {
  const c = await ImapTestClient.connect(h.port);
  await c.ok(LOGIN);
  return c;
}

describe('imapd protocol', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ max_message_size: 100_000, max_line_bytes: 2048, max_bad_commands: 5 });
    for (let i = 1; i <= 3; i++) h.store.deliver(ALICE, MSG(i));
    h.store.deliver(BOB, 'Subject: bob only\r\n\r\nsecret of bob\r\n');
  });
  after(() => h.close());

  it('greets with capabilities; commands need the right state', async () => {
    const c = await ImapTestClient.connect(h.port);
    assert.match(c.greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*STARTTLS.*AUTH=PLAIN/);
    assert.match((await c.command('SELECT INBOX')).done, /^t1 BAD .*log in/);
    assert.match((await c.command('FOO')).done, /^t2 BAD Unknown command/);
    await c.ok(LOGIN);
    assert.match((await c.command('FETCH 1 FLAGS')).done, /BAD .*selected mailbox/);
    assert.match((await c.command('LOGIN a b')).done, /BAD/);
    c.close();
  });

  it('refuses a wrong password with AUTHENTICATIONFAILED and closes after the limit', async () => {
    const c = await ImapTestClient.connect(h.port);
    for (let i = 0; i < 2; i++) assert.match((await c.command(`LOGIN ${ALICE} wrong`)).done, /NO \[AUTHENTICATIONFAILED\]/);
    const r = await c.command(`LOGIN ${ALICE} wrong`);
    assert.match(r.done, /NO \[AUTHENTICATIONFAILED\]/);
    assert.match(await c.response(), /^\* BYE/);
    c.close();
  });

  it('AUTHENTICATE PLAIN with SASL-IR and with a continuation', async () => {
    const b64 = Buffer.from(`\0${ALICE}\0${ALICE_PW}`).toString('base64');
    const c = await ImapTestClient.connect(h.port);
    assert.match((await c.command(`AUTHENTICATE PLAIN ${b64}`)).done, /^t1 OK \[CAPABILITY .*CONDSTORE/);
    c.close();
    const d = await ImapTestClient.connect(h.port);
    d.write('a AUTHENTICATE PLAIN\r\n');
    assert.equal(await d.response(), '+ ');
    d.write(b64 + '\r\n');
    assert.match((await d.until('a')).done, /^a OK/);
    d.close();
  });

  it('STARTTLS, then login; plaintext login refused where not allowed', async () => {
    const strict = await startHarness({ allow_plaintext_loopback: false });
    try {
      const c = await ImapTestClient.connect(strict.port);
      assert.match(c.greeting, /LOGINDISABLED/);
      assert.match((await c.command(LOGIN)).done, /NO \[PRIVACYREQUIRED\]/);
      await c.starttls();
      const cap = await c.command('CAPABILITY');
      assert.match(cap.untagged[0]!, /AUTH=PLAIN/);
      assert.doesNotMatch(cap.untagged[0]!, /STARTTLS/);
      await c.ok(LOGIN);
      c.close();
      const s = await ImapTestClient.connect(strict.imapsPort, { tls: true });
      await s.ok(LOGIN);
      s.close();
    } finally {
      await strict.close();
    }
  });

  it('refuses an oversized literal before reading it: synchronizing gets NO, non-synchronizing BYE', async () => {
    const c = await loggedIn(h);
    c.write('a APPEND INBOX {200000}\r\n');
    assert.match(await c.response(), /^a NO \[TOOBIG\]/);
    // The connection is still usable: nothing of the literal was expected.
    await c.ok('NOOP');
    c.write('b APPEND INBOX {200000+}\r\n');
    assert.match(await c.response(), /^\* BYE \[TOOBIG\]/);
    c.close();
    // Before login, literals are small (4 KiB).
    const d = await ImapTestClient.connect(h.port);
    d.write('a LOGIN {5000}\r\n');
    assert.match(await d.response(), /^a NO \[TOOBIG\]/);
    // All literals of one command count together: many small ones cannot add up.
    d.write('b LOGIN {3000}\r\n');
    assert.match(await d.response(), /^\+ /);
    d.write('x'.repeat(3000) + ' {3000}\r\n');
    assert.match(await d.response(), /^b NO \[TOOBIG\]/);
    await d.ok('NOOP');
    d.close();
  });

  it('closes a connection whose line is too long; counts bad commands', async () => {
    const c = await ImapTestClient.connect(h.port);
    c.write('a NOOP ' + 'x'.repeat(4000) + '\r\n');
    assert.match(await c.response(), /^\* BYE Command line too long/);
    c.close();
    const d = await ImapTestClient.connect(h.port);
    for (let i = 0; i < 4; i++) assert.match((await d.command('BOGUS')).done, /BAD/);
    d.write('z BOGUS\r\n');
    assert.match(await d.response(), /^z BAD/);
    assert.match(await d.response(), /^\* BYE Too many bad commands/);
    d.close();
  });

  it('APPEND with a literal, flags and date; APPENDUID; TRYCREATE for a missing mailbox', async () => {
    const c = await loggedIn(h);
    const msg = 'Subject: appended\r\n\r\nhello\r\n';
    c.write(`a APPEND Drafts (\\Draft $Label1) " 1-Feb-2024 10:00:00 +0100" {${msg.length}}\r\n`);
    assert.match(await c.response(), /^\+ /);
    c.write(msg + '\r\n');
    const r = await c.until('a');
    assert.match(r.done, /^a OK \[APPENDUID [0-9]+ 1\]/);
    await c.ok('SELECT Drafts');
    const f = await c.ok('FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])');
    assert.match(f.untagged[0]!, /FLAGS \(\\Draft \$Label1 \\Recent\) INTERNALDATE "01-Feb-2024 09:00:00 \+0000"/);
    assert.ok(f.untagged[0]!.includes(msg));
    c.write(`b APPEND Nowhere {${msg.length}+}\r\n${msg}\r\n`);
    assert.match((await c.until('b')).done, /^b NO \[TRYCREATE\]/);
    c.close();
  });

  it('isolation: no name reaches another user, patterns list only your own folders', async () => {
    const c = await loggedIn(h);
    for (const name of ['../bob', '~bob', '#shared.bob', '/bob', '"../bob@example.test"', '"#public"', '..', '"%"', '"*"']) {
      for (const cmd of ['SELECT', 'STATUS']) {
        const r = await c.command(`${cmd} ${name}${cmd === 'STATUS' ? ' (MESSAGES)' : ''}`);
        assert.match(r.done, /NO|BAD/, `${cmd} ${name}`);
      }
    }
    const list = await c.ok('LIST "" *');
    const names = list.untagged.map((l) => /"([^"]*)"$/.exec(l)?.[1]);
    assert.deepEqual(names.sort(), ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
    const tricky = await c.ok('LIST "../" *');
    assert.equal(tricky.untagged.length, 0);
    await c.ok('SELECT INBOX');
    const search = await c.ok('SEARCH TEXT "secret of bob"');
    assert.equal(search.untagged[0], '* SEARCH');
    c.close();
  });

  it('two sessions see each other: flags, expunge, new mail at NOOP; IDLE within 1 s', async () => {
    const a = await loggedIn(h);
    const b = await loggedIn(h);
    await a.ok('SELECT INBOX');
    const sel = await b.ok('SELECT INBOX');
    const exists = Number(/\* ([0-9]+) EXISTS/.exec(sel.untagged.join('\n'))![1]);
    await a.ok('STORE 1 +FLAGS (\\Flagged)');
    const n1 = await b.ok('NOOP');
    assert.match(n1.untagged.join('\n'), /\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\)\)/);
    // IDLE: a delivery is pushed without any command.
    b.write('i IDLE\r\n');
    assert.match(await b.response(), /^\+ /);
    const t0 = Date.now();
    h.store.deliver(ALICE, MSG(99));
    assert.equal(await b.response(2000), `* ${exists + 1} EXISTS`);
    assert.ok(Date.now() - t0 < 1000, 'IDLE reported the new message within 1 s');
    b.write('DONE\r\n');
    assert.match((await b.until('i')).done, /^i OK/);
    // Expunge in one session shows as EXPUNGE in the other; held during FETCH by number.
    await a.ok('STORE 2 +FLAGS.SILENT (\\Deleted)');
    const ex = await a.ok('EXPUNGE');
    assert.deepEqual(ex.untagged, ['* 2 EXPUNGE']);
    const f = await b.ok('FETCH 1 FLAGS');
    assert.ok(!f.untagged.some((l) => l.includes('EXPUNGE')), 'no EXPUNGE during FETCH');
    const n2 = await b.ok('NOOP');
    assert.ok(n2.untagged.includes('* 2 EXPUNGE'));
    a.close();
    b.close();
  });

  it('UID FETCH/STORE/COPY/MOVE/UID EXPUNGE with UIDPLUS codes; CONDSTORE', async () => {
    const c = await loggedIn(h);
    await c.ok('CREATE Work');
    const sel = await c.ok('SELECT INBOX (CONDSTORE)');
    assert.match(sel.untagged.join('\n'), /HIGHESTMODSEQ [0-9]+/);
    const f = await c.ok('UID FETCH 1:* (FLAGS MODSEQ)');
    assert.ok(f.untagged.every((l) => /UID [0-9]+ FLAGS .* MODSEQ \([0-9]+\)/.test(l)));
    const uids = f.untagged.map((l) => Number(/UID ([0-9]+)/.exec(l)![1]));
    const first = uids[0]!;
    const cp = await c.ok(`UID COPY ${first} Work`);
    assert.match(cp.done, /OK \[COPYUID [0-9]+ [0-9]+ 1\]/);
    const mv = await c.ok(`UID MOVE ${first} Work`);
    assert.match(mv.untagged[0]!, /^\* OK \[COPYUID [0-9]+ [0-9]+ 2\]/);
    assert.equal(mv.untagged[1], '* 1 EXPUNGE');
    const modseq = Number(/MODSEQ \(([0-9]+)\)/.exec(f.untagged[1]!)![1]);
    const st = await c.ok(`UID STORE ${uids[1]} (UNCHANGEDSINCE ${modseq}) +FLAGS (\\Seen)`);
    assert.match(st.untagged[0]!, /FLAGS \(.*\\Seen.*\) MODSEQ/);
    const st2 = await c.ok(`UID STORE ${uids[1]} (UNCHANGEDSINCE ${modseq}) -FLAGS (\\Seen)`);
    assert.match(st2.done, /OK \[MODIFIED [0-9]+\]/);
    const highest = Math.max(...f.untagged.map((l) => Number(/MODSEQ \(([0-9]+)\)/.exec(l)![1])));
    const changed = await c.ok(`FETCH 1:* (FLAGS) (CHANGEDSINCE ${highest})`);
    assert.equal(changed.untagged.length, 1);
    await c.ok(`UID STORE ${uids[1]} +FLAGS.SILENT (\\Deleted)`);
    const ux = await c.ok(`UID EXPUNGE ${uids[1]}`);
    assert.deepEqual(ux.untagged, ['* 1 EXPUNGE']);
    const es = await c.ok('SEARCH RETURN (MIN MAX COUNT ALL) ALL');
    assert.match(es.untagged[0]!, /^\* ESEARCH \(TAG "t[0-9]+"\) MIN 1 MAX [0-9]+ ALL 1(:[0-9]+)? COUNT [0-9]+$/);
    const status = await c.ok('STATUS Work (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ SIZE)');
    assert.match(status.untagged[0]!, /^\* STATUS "Work" \(MESSAGES 2 UIDNEXT 3 UNSEEN 2 HIGHESTMODSEQ [0-9]+ SIZE [0-9]+\)$/);
    const list = await c.ok('LIST (SPECIAL-USE) "" * RETURN (STATUS (MESSAGES))');
    assert.ok(list.untagged.includes('* LIST (\\HasNoChildren \\Sent) "." "Sent"'));
    assert.ok(list.untagged.some((l) => /^\* STATUS "Sent" \(MESSAGES [0-9]+\)$/.test(l)));
    c.close();
  });

  it('caps connections per address (loopback exemption off)', async () => {
    const capped = await startHarness({ max_connections_per_ip: 2, connection_limit_exempt: [], max_connections: 3 });
    try {
      const a = await ImapTestClient.connect(capped.port);
      const b = await ImapTestClient.connect(capped.port);
      const third = await ImapTestClient.connect(capped.port);
      assert.match(third.greeting, /^\* BYE \[UNAVAILABLE\] Too many connections from your address/);
      third.close();
      a.close();
      // Once one goes, there is room again.
      let c: ImapTestClient | null = null;
      for (let i = 0; i < 50 && !c; i++) {
        const x = await ImapTestClient.connect(capped.port);
        if (x.greeting.startsWith('* OK')) c = x;
        else await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(c, 'admitted after a connection closed');
      b.close();
      c.close();
    } finally {
      await capped.close();
    }
  });

  it('logs out with BYE then the tagged OK', async () => {
    const c = await loggedIn(h);
    const r = await c.command('LOGOUT');
    assert.match(r.untagged[0]!, /^\* BYE/);
    assert.match(r.done, /OK/);
  });
});
