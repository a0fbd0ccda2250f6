// Issue 12, POP3 rules: RFC 1939 states (TRANSACTION commands before login are -ERR), the
// per-line deadline (slow-loris), and the shared connection limiter with its exempt list and
// one IP spelling.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ConnectionLimiter } from '../../src/shared/connection-limiter.js';
import { isLoopbackIp, normalizeIp } from '../../src/shared/client-ip.js';
import { ALICE, ALICE_PW, type Harness, startHarness } from '../pop3d/harness.js';
import { Pop3TestClient } from '../pop3d/pop3-client.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('pop3d states and deadlines', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ idle_timeout_s: 1, max_bad_commands: 50 });
  });
  after(async () => h.close());

  test('TRANSACTION commands before login get -ERR (NOOP included); after login they work', async () => {
    h.fakes.add(ALICE, 'Subject: s\r\n\r\nx\r\n');
    const c = await Pop3TestClient.connect(h.port);
    for (const cmd of ['NOOP', 'STAT', 'LIST', 'UIDL', 'RETR 1', 'TOP 1 0', 'DELE 1', 'RSET']) {
      assert.match(await c.cmd(cmd), /^-ERR /, cmd);
    }
    assert.match(await c.login(ALICE, ALICE_PW), /^\+OK/);
    assert.equal(await c.cmd('NOOP'), '+OK');
    assert.match(await c.cmd('STAT'), /^\+OK 1 /);
    await c.cmd('QUIT');
  });

  test('a command line trickled one byte at a time is cut at the deadline', async () => {
    const c = await Pop3TestClient.connect(h.port);
    const t0 = Date.now();
    const text = `USER ${'slow'.repeat(10)}@example.test\r\n`;
    void (async () => {
      for (const ch of text) {
        if (c.isClosed) return;
        c.write(ch);
        await sleep(100);
      }
    })();
    assert.match(await c.line(6000), /^-ERR .*idle/i);
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 2500, `cut after ${took} ms (idle_timeout_s = 1)`);
    assert.ok(await c.closed(3000));
  });
});

describe('one connection limiter for every front end', () => {
  test('IP spellings: IPv4-mapped IPv6 is IPv4, IPv6 in one canonical form', () => {
    assert.equal(normalizeIp('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeIp('::FFFF:192.0.2.7'), '192.0.2.7');
    assert.equal(normalizeIp('0:0:0:0:0:0:0:1'), '::1');
    assert.equal(normalizeIp('2001:DB8:0:0::1'), '2001:db8::1');
    assert.equal(normalizeIp(' 192.0.2.1 '), '192.0.2.1');
    assert.ok(isLoopbackIp('::ffff:127.0.0.2') && isLoopbackIp('0::1') && !isLoopbackIp('192.0.2.1'));
  });

  test('per-IP cap counts every spelling of one client; the exempt list is honoured; release frees', () => {
    const l = new ConnectionLimiter(() => ({ max_connections: 8, max_connections_per_ip: 2, connection_limit_exempt: ['::ffff:10.0.0.9'] }));
    assert.ok(l.admit('192.0.2.1').ok);
    assert.ok(l.admit('::ffff:192.0.2.1').ok);
    const third = l.admit('::FFFF:192.0.2.1');
    assert.equal(third.ok, false);
    assert.match(third.ok ? '' : third.reason, /too many connections from 192\.0\.2\.1/);
    for (let i = 0; i < 5; i++) assert.ok(l.admit('10.0.0.9').ok, 'exempt, in another spelling');
    assert.equal(l.admit('10.0.0.10').ok, true);
    assert.equal(l.admit('10.0.0.11').ok, false, 'total cap');
    l.release('::ffff:192.0.2.1');
    assert.equal(l.open, 7);
    assert.ok(l.admit('192.0.2.1').ok);
  });

  test('pop3d applies the exempt list (loopback by default) and the per-IP cap otherwise', async () => {
    for (const [exempt, expectRefused] of [
      [['127.0.0.1'], false],
      [[], true],
    ] as const) {
      const h = await startHarness({ max_connections_per_ip: 2, connection_limit_exempt: [...exempt] });
      const open: Pop3TestClient[] = [];
      try {
        for (let i = 0; i < 3; i++) open.push(await Pop3TestClient.connect(h.port));
        assert.equal(/^-ERR \[SYS\/TEMP\]/.test(open[2]!.greeting), expectRefused, `exempt ${JSON.stringify(exempt)}: ${open[2]!.greeting}`);
      } finally {
        for (const c of open) c.close();
        await h.close();
      }
    }
  });
});
