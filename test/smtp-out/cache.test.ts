// Connection cache: a cached session the peer drops without a word is not a delivery failure:
// the message goes again at once on a fresh connection (no deferral).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { waitFor } from '../helpers/tmp.js';
import { type Fancy, message, startFancy } from '../router/harness.js';

/** A bare SMTP peer that takes one message per connection and drops the socket at the next MAIL. */
function oneShotServer(): { server: net.Server; connections: () => number; messages: string[] } {
  let conns = 0;
  const messages: string[] = [];
  const server = net.createServer((sock) => {
    conns++;
    let buf = '';
    let inData = false;
    let count = 0;
    sock.on('error', () => {});
    sock.write('220 oneshot ESMTP\r\n');
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          messages.push(buf.slice(0, end));
          buf = buf.slice(end + 5);
          inData = false;
          count++;
          sock.write('250 2.0.0 ok\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') sock.write('250-oneshot\r\n250 8BITMIME\r\n');
        else if (verb === 'MAIL' && count >= 1) return void sock.destroy();
        else if (verb === 'DATA') {
          inData = true;
          sock.write('354 go\r\n');
        } else if (verb === 'QUIT') sock.end('221 bye\r\n');
        else sock.write('250 ok\r\n');
      }
    });
  });
  return { server, connections: () => conns, messages };
}

describe('smtp-out: connection cache', () => {
  const peer = oneShotServer();
  let f: Fancy;
  before(async () => {
    await new Promise<void>((r) => peer.server.listen(0, '127.0.0.1', () => r()));
    const port = (peer.server.address() as net.AddressInfo).port;
    f = await startFancy({ smtp_out: { routes: { 'oneshot.test': `127.0.0.1:${port}` }, connection_cache_s: 30 } });
  });
  after(async () => {
    await f.stop();
    peer.server.close();
  });

  test('a cached session that died is replaced, the message is not deferred', async () => {
    await f.inject('alice@example.test', ['a@oneshot.test'], message('first'));
    await waitFor(() => peer.messages.some((m) => m.includes('Subject: first')));
    await new Promise((r) => setTimeout(r, 300));
    const qid = await f.inject('alice@example.test', ['b@oneshot.test'], message('second'));
    await waitFor(() => peer.messages.some((m) => m.includes('Subject: second')), 20_000);
    assert.equal(peer.connections(), 2);
    assert.ok(!f.logs.some((l) => l.event === 'smtp-out.deferred' && l.qid === qid), 'no deferral');
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid);
  });
});
