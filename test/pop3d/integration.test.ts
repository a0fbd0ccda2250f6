// pop3d with the real authd and mailboxd (startSystem): mail stored through mailboxd's IPC
// `store` is read back over POP3 exactly as it lies in the Maildir; numbering, deletion and
// locking hold with the real servers too; a 20 MiB message streams through.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type System, startSystem } from '../../src/cli/start.js';
import type { Config } from '../../src/config/schema.js';
import { IpcClient } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { testClient, testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { toolSkip } from '../helpers/tools.js';
import { portOf } from './harness.js';
import { Pop3TestClient } from './pop3-client.js';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';
const DAVE = 'dave@example.test';
const ERIN = 'erin@example.test';
const FRANK = 'frank@example.test';

describe('pop3d with the real authd and mailboxd', () => {
  const tmp = tempDir('fmail-pop3d-int-');
  let config: Config;
  let system: System;
  let port: number;
  let store: IpcClient;
  const clients: Pop3TestClient[] = [];
  const connect = async (): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect(port);
    clients.push(c);
    return c;
  };

  const deliver = async (user: string, body: Buffer | string): Promise<void> => {
    const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const r = await store.store('store', [user, user, String(data.length)], data);
    assert.ok(r.ok, `store: ${r.params.join(' ')}`);
  };
  /** maildir - every message file of USER, as bytes. */
  const maildir = (user: string): Buffer[] => {
    const base = path.join(tmp.dir, 'mail', user);
    return ['new', 'cur'].flatMap((sub) => {
      try {
        return readdirSync(path.join(base, sub)).map((f) => readFileSync(path.join(base, sub, f)));
      } catch {
        return [];
      }
    });
  };

  before(async () => {
    writeFileSync(path.join(tmp.dir, 'users'), `${ALICE}:{PLAIN}secret::::::\n${BOB}:{PLAIN}bobpw::::::\n${CAROL}:{PLAIN}carolpw::::::\n${DAVE}:{PLAIN}davepw::::::\n${ERIN}:{PLAIN}erinpw::::::\n${FRANK}:{PLAIN}frankpw::::::\n`);
    config = testConfig(tmp.dir, { pop3d: { failed_login_delay_ms: 20 } });
    system = await startSystem(config, silentLogger(), ['authd', 'mailboxd', 'pop3d']);
    const pop = system.servers.find((s) => s.name === 'pop3d')!;
    port = portOf(pop.addresses.pop3);
    store = testClient(config, config.ipc.mailboxd);
  });
  after(async () => {
    for (const c of clients) c.close();
    store.close();
    await system.stop();
    tmp.cleanup();
  });

  test('RETR returns the Maildir bytes exactly; dot lines and 8-bit survive', async () => {
    await deliver(ALICE, 'Subject: one\r\n\r\nfirst\r\n');
    await deliver(ALICE, 'Subject: two\r\n\r\n.\r\n..x\r\nGrüße ✓\r\n');
    await deliver(ALICE, Buffer.from('Subject: three\r\n\r\n\xe4\xff raw 8-bit\r\n.end\r\n', 'latin1'));
    const c = await connect();
    assert.match(await c.login(ALICE, 'secret'), /^\+OK Logged in, 3 messages/);
    const got: Buffer[] = [];
    for (let i = 1; i <= 3; i++) got.push((await c.multi(`RETR ${i}`))[1]);
    const [, uidl] = await c.multi('UIDL');
    assert.equal(uidl.toString().trim().split('\r\n').length, 3);
    await c.cmd('QUIT');
    const key = (b: Buffer): string => b.toString('latin1');
    assert.deepEqual(got.map(key).sort(), maildir(ALICE).map(key).sort());
    assert.match(got[1]!.toString(), /\r\n\.\r\n\.\.x\r\nGrüße ✓\r\n$/);
  });

  test('wrong password gets -ERR [AUTH]; a second session gets -ERR [IN-USE]', async () => {
    const c = await connect();
    assert.match(await c.login(ALICE, 'wrong'), /^-ERR \[AUTH\]/);
    assert.match(await c.login(ALICE, 'secret'), /^\+OK/);
    const d = await connect();
    assert.match(await d.login(ALICE, 'secret'), /^-ERR \[IN-USE\]/);
    await c.cmd('QUIT');
    assert.ok(await c.closed());
    assert.match(await d.login(ALICE, 'secret'), /^\+OK/);
    await d.cmd('QUIT');
  });

  test('numbers stay fixed while mail arrives; QUIT deletes exactly the marked ones', async () => {
    const before = maildir(ALICE).length;
    const c = await connect();
    await c.login(ALICE, 'secret');
    const stat = await c.cmd('STAT');
    const [, first] = await c.multi('RETR 1');
    await deliver(ALICE, 'Subject: arrived meanwhile\r\n\r\nnew\r\n');
    assert.equal(await c.cmd('STAT'), stat);
    assert.match(await c.cmd(`RETR ${before + 1}`), /^-ERR/);
    assert.match(await c.cmd('DELE 1'), /^\+OK/);
    assert.match(await c.cmd('QUIT'), /^\+OK .*1 messages deleted/);
    const now = maildir(ALICE);
    assert.equal(now.length, before, 'one deleted, one arrived');
    assert.ok(!now.some((m) => m.equals(first)), 'the deleted one is the one marked');
    assert.ok(now.some((m) => m.includes('arrived meanwhile')));
  });

  test('a dropped session deletes nothing', async () => {
    const n = maildir(ALICE).length;
    const c = await connect();
    await c.login(ALICE, 'secret');
    await c.cmd('DELE 1');
    await c.cmd('DELE 2');
    c.close();
    const d = await connect();
    for (let i = 0; i < 200 && !(await d.login(ALICE, 'secret')).startsWith('+OK'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(await d.cmd('STAT'), new RegExp(`^\\+OK ${n} `));
    await d.cmd('QUIT');
    assert.equal(maildir(ALICE).length, n);
  });

  test('a 20 MiB message streams through byte-exact', async () => {
    const line = 'Twenty mebibytes of text, with . dots and Grüße ✓ ...........................\r\n';
    const big = Buffer.from('Subject: big\r\n\r\n.dot first\r\n' + line.repeat(Math.ceil((20 << 20) / Buffer.byteLength(line))));
    await deliver(BOB, big);
    const c = await connect();
    await c.login(BOB, 'bobpw');
    const [st, body] = await c.multi('RETR 1');
    assert.match(st, /^\+OK \d+ octets/);
    assert.ok(body.equals(maildir(BOB)[0]!));
    assert.ok(body.subarray(-big.length).equals(big));
    await c.cmd('QUIT');
  });

  test('100 pipelined RETRs (replies held and flushed together, past the 256 KiB hold) come back in order, byte-exact', async () => {
    const sent: Buffer[] = [];
    for (let i = 1; i <= 100; i++) {
      const m = Buffer.from(`Subject: p${i}\r\n\r\n.first dot\r\n` + `line ${i} of the pipelined set ..\r\n.\r\n`.repeat(1000));
      sent.push(m);
      await deliver(CAROL, m);
    }
    const c = await connect();
    assert.match(await c.login(CAROL, 'carolpw'), /^\+OK Logged in, 100 messages/);
    c.write(Array.from({ length: 100 }, (_, i) => `RETR ${i + 1}\r\n`).join('') + 'STAT\r\n');
    for (let i = 0; i < 100; i++) {
      assert.match(await c.line(), /^\+OK \d+ octets/, `RETR ${i + 1}`);
      assert.ok((await c.body()).subarray(-sent[i]!.length).equals(sent[i]!), `RETR ${i + 1} byte-exact`);
    }
    assert.match(await c.line(), /^\+OK 100 /);
    await c.cmd('QUIT');
  });

  test('read directly: bare LFs and more dot lines than stuffing in place has room for; TOP past one buffer', async () => {
    // Every line a dot line or a bare LF: the stuffed message is a third longer than the file.
    const dots = Buffer.from('Subject: dots\n\n' + '.\n..\r\n.x\n'.repeat(50_000) + '.last');
    const line = 'A line of the long message, with . dots ............................\r\n';
    const long = Buffer.from('Subject: long\r\nX-Two: 2\r\n\r\n' + `.body\r\n${line}`.repeat(8000));
    await deliver(DAVE, dots);
    await deliver(DAVE, long);
    const stuff = (b: Buffer): string => {
      const lines = b.toString('latin1').replace(/\r?\n/g, '\n').replace(/\n$/, '').split('\n');
      return lines.map((l) => (l.startsWith('.') ? '.' + l : l) + '\r\n').join('') + '.\r\n';
    };
    // As stored (mailboxd adds Delivered-To).
    const files = maildir(DAVE);
    const dotsFile = files.find((f) => f.includes('Subject: dots'))!;
    const longFile = files.find((f) => f.includes('Subject: long'))!;
    assert.ok(dotsFile.subarray(-dots.length).equals(dots) && longFile.subarray(-long.length).equals(long));
    const c = await connect();
    assert.match(await c.login(DAVE, 'davepw'), /^\+OK Logged in, 2 messages/);
    const raw = async (cmd: string): Promise<string> => {
      c.write(`${cmd}\r\n`);
      assert.match(await c.line(), /^\+OK/, cmd);
      return (await c.rawUntilEnd()).toString('latin1');
    };
    // Numbered in arrival order. (assert.ok: a diff of megabytes helps nobody.)
    assert.ok((await raw('RETR 1')) === stuff(dotsFile), 'RETR 1: every dot line stuffed, every bare LF a CRLF');
    assert.ok((await raw('RETR 2')) === stuff(longFile), 'RETR 2 stuffed exactly');
    // TOP 2: the header, the blank line, two body lines; the rest of a 600 KiB file is not sent.
    const header = longFile.subarray(0, longFile.indexOf('\r\n\r\n') + 4);
    assert.equal(await raw('TOP 2 2'), stuff(Buffer.concat([header, Buffer.from(`.body\r\n${line}`)])));
    assert.equal(await raw('TOP 1 0'), stuff(dotsFile.subarray(0, dotsFile.indexOf('\n\n') + 2)));
    await c.cmd('QUIT');
  });

  test('a file whose name gives the wrong size is served whole, as it is on disk', async () => {
    // As another MDA might leave them: S= far below the file's size, and far above it.
    const line = 'a line of a message that is much longer than its name says .........\r\n';
    const longer = Buffer.from('Subject: longer\r\n\r\n' + line.repeat(3000));
    const shorter = Buffer.from('Subject: shorter\r\n\r\nshort\r\n');
    const maildir = path.join(tmp.dir, 'mail', FRANK);
    for (const sub of ['tmp', 'new', 'cur']) mkdirSync(path.join(maildir, sub), { recursive: true });
    writeFileSync(path.join(maildir, 'cur', '1700000001.M1P1Q1.other,S=10:2,S'), longer);
    writeFileSync(path.join(maildir, 'cur', '1700000002.M1P1Q2.other,S=999999:2,S'), shorter);
    const c = await connect();
    assert.match(await c.login(FRANK, 'frankpw'), /^\+OK Logged in, 2 messages/);
    const [st1, body1] = await c.multi('RETR 1');
    assert.match(st1, /^\+OK/);
    assert.ok(body1.equals(longer), `the longer file whole: ${body1.length} of ${longer.length} bytes`);
    const [st2, body2] = await c.multi('RETR 2');
    assert.match(st2, /^\+OK/);
    assert.ok(body2.equals(shorter), 'the shorter file as it is');
    assert.match(await c.cmd('NOOP'), /^\+OK/);
    await c.cmd('QUIT');
  });

  test('a symlink, a FIFO or a directory planted in the Maildir is never followed, waited on or served, by pop3d or by mailboxd behind it', async () => {
    await deliver(ERIN, 'Subject: real\r\n\r\nreal\r\n');
    const secret = path.join(tmp.dir, 'secret.txt');
    writeFileSync(secret, 'Subject: secret\r\n\r\nnot in the Maildir\r\n');
    const cur = path.join(tmp.dir, 'mail', ERIN, 'cur');
    // Names that sort after the real message, with the size in them (so nobody needs a stat to list them).
    symlinkSync(secret, path.join(cur, `9999999998.M1P1Q1.elsewhere,S=40:2,S`));
    spawnSync('mkfifo', [path.join(cur, `9999999999.M1P1Q2.elsewhere,S=40:2,S`)]);
    mkdirSync(path.join(cur, `9999999999.M1P1Q3.elsewhere,S=40:2,S`));
    const c = await connect();
    const hello = await c.login(ERIN, 'erinpw');
    assert.match(hello, /^\+OK Logged in, \d+ messages/);
    const n = Number(/(\d+) messages/.exec(hello)![1]);
    let real = 0;
    for (let i = 1; i <= n; i++) {
      const [st, body] = await c.multi(`RETR ${i}`);
      assert.ok(!body.includes('not in the Maildir'), `RETR ${i} must not return a file outside the Maildir`);
      if (body.includes('Subject: real')) {
        assert.match(st, /^\+OK/);
        real++;
      } else if (i > n - 3) {
        assert.match(st, /^-ERR/, `RETR ${i}: the planted entry is refused, with nothing of it sent`);
      }
    }
    // Still serving: neither pop3d's thread nor mailboxd's was left blocked on the FIFO.
    assert.match(await c.cmd('NOOP'), /^\+OK/);
    await c.cmd('QUIT');
    assert.equal(real, 1, 'the real message is served');
  });

  test('poplib (STLS) reads the whole mailbox byte-exact', { skip: toolSkip('python3') }, async () => {
    const script = `
import poplib, ssl, sys, base64, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3('127.0.0.1', ${port}, timeout=60)
p.stls(context=ctx)
p.user('${ALICE}'); p.pass_('secret')
n, _ = p.stat()
sys.stdout.write(json.dumps([base64.b64encode(b'\\r\\n'.join(p.retr(i)[1]) + b'\\r\\n').decode() for i in range(1, n + 1)]))
p.quit()
`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('python3', ['-c', script]);
      let o = '';
      let e = '';
      child.stdout.on('data', (d: Buffer) => (o += d.toString()));
      child.stderr.on('data', (d: Buffer) => (e += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(o);
        else reject(new Error(e));
      });
    });
    const got = (JSON.parse(out) as string[]).map((b) => Buffer.from(b, 'base64').toString('latin1')).sort();
    assert.deepEqual(got, maildir(ALICE).map((m) => m.toString('latin1')).sort());
  });
});
