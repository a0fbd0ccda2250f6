// POP3 protocol rules, scenario by scenario, against pop3d in front of fake authd/mailboxd:
// the state machine, DELE/RSET/QUIT semantics, IN-USE, stable numbering, byte-exact bodies.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { waitFor } from '../helpers/tmp.js';
import { ALICE, ALICE_PW, BOB, BOB_PW, type Harness, startHarness } from './harness.js';
import { Pop3TestClient } from './pop3-client.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function mail(subject: string, body: string): string {
  return `From: a@remote.test\r\nTo: ${ALICE}\r\nSubject: ${subject}\r\n\r\n${body}`;
}

describe('pop3d protocol', () => {
  let h: Harness;
  const clients: Pop3TestClient[] = [];
  const connect = async (opts: { tls?: boolean } = {}): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect(opts.tls ? h.pop3sPort : h.port, opts);
    clients.push(c);
    return c;
  };
  /** fresh - alice's mailbox replaced by `bodies`. */
  const fresh = (...bodies: string[]): void => {
    h.fakes.boxes.set(ALICE, []);
    for (const b of bodies) h.fakes.add(ALICE, b);
  };

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    for (const c of clients) c.close();
    await h.close();
  });

  test('greeting and CAPA before login', async () => {
    const c = await connect();
    assert.match(c.greeting, /^\+OK /);
    const [status, body] = await c.multi('CAPA');
    assert.match(status, /^\+OK/);
    const caps = body.toString().split('\r\n');
    for (const cap of ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'STLS', 'USER', 'SASL PLAIN']) assert.ok(caps.includes(cap), cap);
    await c.cmd('QUIT');
  });

  test('transaction commands before login are refused', async () => {
    const c = await connect();
    for (const cmd of ['STAT', 'LIST', 'LIST 1', 'UIDL', 'RETR 1', 'TOP 1 0', 'DELE 1', 'RSET']) {
      assert.match(await c.cmd(cmd), /^-ERR /, cmd);
    }
    assert.match(await c.cmd('PASS x'), /^-ERR /, 'PASS without USER');
    assert.match(await c.cmd('QUIT'), /^\+OK/);
    assert.ok(await c.closed());
  });

  test('authorization commands after login are refused; NOOP and CAPA work', async () => {
    fresh(mail('one', 'x\r\n'));
    const c = await connect();
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
    for (const cmd of ['USER bob', 'PASS x', 'AUTH PLAIN', 'STLS']) assert.match(await c.cmd(cmd), /^-ERR /, cmd);
    assert.equal(await c.cmd('NOOP'), '+OK');
    const [, caps] = await c.multi('CAPA');
    assert.ok(!caps.toString().includes('STLS'), 'no STLS after login');
    await c.cmd('QUIT');
  });

  test('unknown commands and bad syntax are -ERR; too many close the connection', async () => {
    const c = await connect();
    assert.match(await c.cmd('HELO there'), /^-ERR/);
    assert.match(await c.cmd('CAPA extra'), /^-ERR/);
    for (let i = 3; i < h.config.pop3d.max_bad_commands; i++) assert.match(await c.cmd('XYZZY'), /^-ERR/);
    assert.match(await c.cmd('XYZZY'), /^-ERR .*closing/);
    assert.ok(await c.closed(), 'closed after max_bad_commands');
  });

  test('wrong password: -ERR [AUTH], delayed; the client address is passed to authd', async () => {
    const c = await connect();
    const t0 = Date.now();
    assert.match(await c.login(ALICE, 'wrong'), /^-ERR \[AUTH\]/);
    assert.ok(Date.now() - t0 >= h.config.pop3d.failed_login_delay_ms - 2, 'delayed');
    const last = h.fakes.auths.at(-1)!;
    assert.deepEqual(last, [ALICE, 'wrong', '127.0.0.1']);
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/, 'a later right password works');
    await c.cmd('QUIT');
  });

  test('failed logins are limited per connection', async () => {
    const c = await connect();
    for (let i = 1; i < h.config.pop3d.max_login_failures; i++) assert.match(await c.login(BOB, 'nope'), /^-ERR \[AUTH\]/);
    assert.match(await c.login(BOB, 'nope'), /^-ERR \[AUTH\].*closing/);
    assert.ok(await c.closed());
  });

  test('AUTH PLAIN with an initial response, with a continuation, cancelled, malformed', async () => {
    fresh();
    let c = await connect();
    const [st, mechs] = await c.multi('AUTH');
    assert.match(st, /^\+OK/);
    assert.equal(mechs.toString(), 'PLAIN\r\n');
    assert.match(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE}\0${ALICE_PW}`)}`), /^\+OK/);
    await c.cmd('QUIT');

    c = await connect();
    assert.equal(await c.cmd('AUTH PLAIN'), '+ ');
    assert.match(await c.cmd(b64(`${BOB}\0${BOB}\0${BOB_PW}`)), /^\+OK/);
    await c.cmd('QUIT');

    c = await connect();
    assert.equal(await c.cmd('AUTH PLAIN'), '+ ');
    assert.match(await c.cmd('*'), /^-ERR/);
    assert.match(await c.cmd('AUTH PLAIN !!!'), /^-ERR \[AUTH\]/);
    assert.match(await c.cmd(`AUTH PLAIN ${b64(`${BOB}\0${ALICE}\0${ALICE_PW}`)}`), /^-ERR \[AUTH\]/, 'no proxy authorization');
    assert.match(await c.cmd('AUTH CRAM-MD5'), /^-ERR/);
    c.close();
  });

  test('STAT, LIST, UIDL, RETR, TOP: exact bytes, dot-stuffing, 8-bit', async () => {
    const tricky = mail('tricky', '.\r\n..two\r\n.leading\r\nGrüße ✓ \xff\r\nlast line without end');
    const bare = 'Subject: bare\n\nline1\n.dot\n';
    fresh(mail('first', 'hello\r\n'), tricky, bare);
    const [m1, m2, m3] = h.fakes.boxes.get(ALICE)!;
    const c = await connect();
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK Logged in, 3 messages/);
    const total = m1!.data.length + m2!.data.length + m3!.data.length;
    assert.equal(await c.cmd('STAT'), `+OK 3 ${total}`);
    const [, list] = await c.multi('LIST');
    assert.equal(list.toString(), `1 ${m1!.data.length}\r\n2 ${m2!.data.length}\r\n3 ${m3!.data.length}\r\n`);
    assert.equal(await c.cmd('LIST 2'), `+OK 2 ${m2!.data.length}`);
    assert.match(await c.cmd('LIST 4'), /^-ERR/);
    assert.match(await c.cmd('LIST x'), /^-ERR/);
    const [, uidl] = await c.multi('UIDL');
    assert.equal(uidl.toString(), `1 ${m1!.uid}\r\n2 ${m2!.uid}\r\n3 ${m3!.uid}\r\n`);
    assert.equal(await c.cmd('UIDL 3'), `+OK 3 ${m3!.uid}`);

    const [st, body1] = await c.multi('RETR 1');
    assert.equal(st, `+OK ${m1!.data.length} octets`);
    assert.ok(body1.equals(m1!.data));

    // On the wire: every dot-led line doubled; the unterminated last line ends with CRLF.
    c.write('RETR 2\r\n');
    assert.match(await c.line(), /^\+OK/);
    const raw = await c.rawUntilEnd();
    assert.ok(raw.equals(Buffer.concat([Buffer.from(m2!.data.toString('utf8').replace(/^\./gm, '..')), Buffer.from('\r\n.\r\n')])));

    const [, body3] = await c.multi('RETR 3');
    assert.equal(body3.toString(), 'Subject: bare\r\n\r\nline1\r\n.dot\r\n', 'bare LF becomes CRLF');

    const [, top0] = await c.multi('TOP 2 0');
    assert.equal(top0.toString(), `From: a@remote.test\r\nTo: ${ALICE}\r\nSubject: tricky\r\n\r\n`);
    const [, top2] = await c.multi('TOP 2 2');
    assert.equal(top2.toString(), `From: a@remote.test\r\nTo: ${ALICE}\r\nSubject: tricky\r\n\r\n.\r\n..two\r\n`);
    assert.match(await c.cmd('TOP 2'), /^-ERR/);
    assert.match(await c.cmd('TOP 2 -1'), /^-ERR/);
    assert.match(await c.cmd('RETR 9'), /^-ERR/);
    await c.cmd('QUIT');
  });

  test('DELE marks, RSET unmarks, QUIT deletes in the UPDATE state', async () => {
    fresh(mail('a', '1\r\n'), mail('b', '2\r\n'), mail('c', '3\r\n'));
    const [, m2, m3] = h.fakes.boxes.get(ALICE)!;
    const c = await connect();
    await c.login(ALICE, ALICE_PW);
    assert.match(await c.cmd('DELE 1'), /^\+OK/);
    assert.match(await c.cmd('DELE 1'), /^-ERR/, 'already deleted');
    assert.match(await c.cmd('RETR 1'), /^-ERR/);
    assert.match(await c.cmd('LIST 1'), /^-ERR/);
    assert.match(await c.cmd('TOP 1 0'), /^-ERR/);
    assert.equal(await c.cmd('STAT'), `+OK 2 ${m2!.data.length + m3!.data.length}`);
    const [, list] = await c.multi('LIST');
    assert.ok(!list.toString().startsWith('1 '), 'deleted message not listed');
    assert.equal(h.fakes.boxes.get(ALICE)!.length, 3, 'nothing removed before QUIT');
    assert.match(await c.cmd('RSET'), /^\+OK Maildrop has 3 messages/);
    assert.match(await c.cmd('RETR 1'), /^\+OK/);
    await c.body();
    await c.cmd('DELE 2');
    await c.cmd('DELE 3');
    assert.match(await c.cmd('QUIT'), /^\+OK .*2 messages deleted/);
    assert.ok(await c.closed());
    const left = h.fakes.boxes.get(ALICE)!;
    assert.equal(left.length, 1);
    assert.match(left[0]!.data.toString(), /Subject: a/);
  });

  test('a dropped connection deletes nothing and frees the maildrop', async () => {
    fresh(mail('a', '1\r\n'), mail('b', '2\r\n'));
    const c = await connect();
    await c.login(ALICE, ALICE_PW);
    await c.cmd('DELE 1');
    await c.cmd('DELE 2');
    c.close();
    const d = await connect();
    // The lock goes when the server notices the drop.
    await waitFor(async () => (await d.login(ALICE, ALICE_PW)).startsWith('+OK'), 10_000, 50);
    assert.equal(await d.cmd('STAT'), `+OK 2 ${h.fakes.boxes.get(ALICE)!.reduce((s, m) => s + m.data.length, 0)}`);
    await d.cmd('QUIT');
    assert.equal(h.fakes.boxes.get(ALICE)!.length, 2);
  });

  test('a second session on the same maildrop gets -ERR [IN-USE]', async () => {
    fresh(mail('a', '1\r\n'));
    const c = await connect();
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
    const d = await connect();
    assert.match(await d.login(ALICE, ALICE_PW), /^-ERR \[IN-USE\]/);
    assert.match(await d.cmd(`AUTH PLAIN ${b64(`\0${ALICE}\0${ALICE_PW}`)}`), /^-ERR \[IN-USE\]/);
    assert.match(await d.login(BOB, BOB_PW), /^\+OK/, 'another user is not blocked');
    await d.cmd('QUIT');
    await c.cmd('QUIT');
    assert.ok(await c.closed());
    const e = await connect();
    assert.match(await e.login(ALICE, ALICE_PW), /^\+OK/, 'free again after QUIT');
    await e.cmd('QUIT');
  });

  test('numbers and sizes stay fixed while new mail arrives', async () => {
    fresh(mail('a', '1\r\n'), mail('b', '2\r\n'));
    const c = await connect();
    await c.login(ALICE, ALICE_PW);
    const stat = await c.cmd('STAT');
    const [, list] = await c.multi('LIST');
    h.fakes.add(ALICE, mail('new', 'arrived during the session\r\n'));
    assert.equal(await c.cmd('STAT'), stat);
    assert.deepEqual((await c.multi('LIST'))[1], list);
    assert.match(await c.cmd('RETR 3'), /^-ERR/);
    await c.cmd('DELE 1');
    await c.cmd('QUIT');
    const d = await connect();
    assert.match(await d.login(ALICE, ALICE_PW), /^\+OK Logged in, 2 messages/);
    const [, body] = await d.multi('RETR 2');
    assert.match(body.toString(), /Subject: new/);
    await d.cmd('QUIT');
  });

  test('pipelined commands are answered in order', async () => {
    fresh(mail('a', '1\r\n'), mail('b', '2\r\n'));
    const c = await connect();
    c.write(`USER ${ALICE}\r\nPASS ${ALICE_PW}\r\nSTAT\r\nRETR 1\r\nLIST 2\r\nQUIT\r\n`);
    assert.match(await c.line(), /^\+OK/);
    assert.match(await c.line(), /^\+OK Logged in/);
    assert.match(await c.line(), /^\+OK 2 /);
    assert.match(await c.line(), /^\+OK/);
    assert.match((await c.body()).toString(), /Subject: a/);
    assert.match(await c.line(), /^\+OK 2 \d+$/);
    assert.match(await c.line(), /^\+OK/);
    assert.ok(await c.closed());
  });

  test('pipelined RETRs (read-ahead) come back in order, right after DELE and repeats', async () => {
    fresh(...Array.from({ length: 12 }, (_, i) => mail(`m${i + 1}`, `body ${i + 1}\r\n`)));
    const c = await connect();
    await c.login(ALICE, ALICE_PW);
    const cmds = ['RETR 1', 'RETR 2', 'RETR 2', 'RETR 3', 'DELE 4', 'RETR 4', 'RETR 5', ...Array.from({ length: 7 }, (_, i) => `RETR ${i + 6}`), 'RETR 99', 'RETR 12'];
    c.write(cmds.map((x) => x + '\r\n').join(''));
    for (const cmd of cmds) {
      const n = Number(cmd.split(' ')[1]);
      const st = await c.line();
      if (cmd.startsWith('DELE')) assert.match(st, /^\+OK/, cmd);
      else if (n === 4 || n === 99) assert.match(st, /^-ERR/, cmd);
      else {
        assert.match(st, /^\+OK/, cmd);
        assert.match((await c.body()).toString(), new RegExp(`Subject: m${n}\r\n\r\nbody ${n}\r\n$`), cmd);
      }
    }
    await c.cmd('QUIT');
  });

  test('STLS upgrades; plaintext pipelined after STLS is discarded', async () => {
    fresh(mail('a', '1\r\n'));
    const c = await connect();
    c.write(`STLS\r\nUSER ${ALICE}\r\n`);
    assert.match(await c.line(), /^\+OK/);
    // Upgrade by hand (the test client's stls() would send STLS again).
    await c.upgradeAfterStls();
    assert.match(await c.cmd(`PASS ${ALICE_PW}`), /^-ERR/, 'the injected USER was not kept');
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
    await c.cmd('QUIT');

    const d = await connect();
    assert.match(await d.stls(), /^\+OK/);
    const [, caps] = await d.multi('CAPA');
    assert.ok(!caps.toString().includes('STLS'), 'no STLS inside TLS');
    assert.match(await d.cmd('STLS'), /^-ERR/);
    assert.match(await d.login(ALICE, ALICE_PW), /^\+OK/);
    await d.cmd('QUIT');
  });

  test('implicit TLS on the pop3s port', async () => {
    fresh(mail('a', 'tls body\r\n'));
    const c = await connect({ tls: true });
    assert.match(c.greeting, /^\+OK/);
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
    const [, body] = await c.multi('RETR 1');
    assert.match(body.toString(), /tls body/);
    await c.cmd('QUIT');
  });

  test('an overlong line gets -ERR; a line without end closes the connection', async () => {
    const c = await connect();
    assert.match(await c.cmd('NOOP ' + 'x'.repeat(2000)), /^-ERR Line too long/);
    assert.match(await c.cmd('CAPA'), /^\+OK/, 'the connection is still usable');
    await c.body();
    c.write('x'.repeat(200 * 1024));
    assert.match(await c.line(), /^-ERR Line too long/);
    assert.ok(await c.closed());
  });

  test('a 20 MiB message is retrieved byte-exact', async () => {
    const line = 'A line of body text with . dots and Grüße, 76 chars long.................\r\n';
    const big = Buffer.from(`Subject: big\r\n\r\n${'.starts with a dot\r\n'}${line.repeat(Math.ceil((20 * 1024 * 1024) / Buffer.byteLength(line)))}`);
    fresh();
    h.fakes.add(ALICE, big);
    const c = await connect();
    await c.login(ALICE, ALICE_PW);
    const [st, body] = await c.multi('RETR 1');
    assert.equal(st, `+OK ${big.length} octets`);
    assert.equal(body.length, big.length);
    assert.ok(body.equals(big));
    const [, top] = await c.multi('TOP 1 1');
    assert.equal(top.toString(), 'Subject: big\r\n\r\n.starts with a dot\r\n');
    await c.cmd('QUIT');
  });
});

describe('pop3d policy and limits', () => {
  let h: Harness;
  const clients: Pop3TestClient[] = [];
  before(async () => {
    h = await startHarness({ allow_plaintext_loopback: false, idle_timeout_s: 0.5, max_connections_per_ip: 3, connection_limit_exempt: [] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await h.close();
  });
  const connect = async (): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect(h.port);
    clients.push(c);
    return c;
  };

  test('plaintext login is refused before STLS, allowed after', async () => {
    const c = await connect();
    const [, caps] = await c.multi('CAPA');
    assert.ok(!caps.toString().includes('USER'), 'USER not offered without TLS');
    assert.ok(caps.toString().includes('STLS'));
    assert.match(await c.cmd(`USER ${ALICE}`), /^-ERR \[AUTH\]/);
    assert.match(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE}\0${ALICE_PW}`)}`), /^-ERR \[AUTH\]/);
    assert.equal(h.fakes.auths.length, 0, 'the password never reached authd');
    await c.stls();
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
    await c.cmd('QUIT');
  });

  test('idle sessions are logged out without deleting anything', async () => {
    h.fakes.add(ALICE, 'Subject: keep\r\n\r\nx\r\n');
    const c = await connect();
    await c.stls();
    await c.login(ALICE, ALICE_PW);
    assert.match(await c.cmd('DELE 1'), /^\+OK/);
    assert.match(await c.line(), /^-ERR .*idle/i);
    assert.ok(await c.closed());
    assert.equal(h.fakes.boxes.get(ALICE)!.length, 1);
    assert.equal(h.fakes.deles.length, 0);
  });

  test('connections per address are capped', async () => {
    const open = [await connect(), await connect(), await connect()];
    const extra = await connect();
    assert.match(extra.greeting, /^-ERR \[SYS\/TEMP\]/);
    assert.ok(await extra.closed());
    for (const c of open) c.close();
  });
});

describe('pop3d with mailboxd down', () => {
  test('login answers -ERR [SYS/TEMP] and the maildrop stays free', async () => {
    const h = await startHarness();
    try {
      await h.fakes.mailboxd.close(100);
      const c = await Pop3TestClient.connect(h.port);
      assert.match(await c.login(ALICE, ALICE_PW), /^-ERR \[SYS\/TEMP\]/);
      await h.fakes.restartMailboxd();
      assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
      c.close();
    } finally {
      await h.close();
    }
  });
});
