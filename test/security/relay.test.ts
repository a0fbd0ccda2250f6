// Issue 12: relay credentials never travel in clear. With relay_user set, smtp-out requires
// TLS to the relay (verified against the system CAs or relay_ca_file unless
// relay_tls_verify = false); without it the message is deferred, saying why, and the password
// bytes never reach the relay. The fakes below record every byte they receive.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { generate } from 'selfsigned';

import { waitFor } from '../helpers/tmp.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

const USER = 'relayuser';
const PASS = 'Sup3r;secret pass';

/** The forms a password can take on the wire: raw, and inside AUTH PLAIN / LOGIN base64. */
const SECRETS = [PASS, Buffer.from(`\0${USER}\0${PASS}`).toString('base64'), Buffer.from(PASS).toString('base64')];

interface FakeRelay {
  port: number;
  /** Everything received, all connections together. */
  received(): string;
  connections: number;
  close(): Promise<void>;
}

/**
 * fakeRelay - a raw SMTP server that offers AUTH. `no-starttls`: STARTTLS not offered (and
 * refused if tried); `broken-tls`: STARTTLS offered, then garbage instead of a TLS handshake.
 */
async function fakeRelay(mode: 'no-starttls' | 'broken-tls'): Promise<FakeRelay> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const relay = { port: 0, connections: 0, received: () => Buffer.concat(chunks).toString('latin1'), close: async () => {} };
  const server = net.createServer((sock) => {
    relay.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.write('220 fake.relay ESMTP\r\n');
    let buf = '';
    let inData = false;
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            sock.write('250 2.0.0 ok\r\n');
          }
          continue;
        }
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') sock.write(`250-fake.relay\r\n${mode === 'broken-tls' ? '250-STARTTLS\r\n' : ''}250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n`);
        else if (verb === 'HELO') sock.write('250 fake.relay\r\n');
        else if (verb === 'STARTTLS' && mode === 'broken-tls') {
          sock.write('220 2.0.0 go ahead\r\nthis is not a TLS handshake at all\r\n');
          sock.end();
          return;
        } else if (verb === 'STARTTLS') sock.write('502 5.5.1 not implemented\r\n');
        else if (verb === 'AUTH') sock.write(line.split(' ').length > 2 ? '235 2.7.0 ok\r\n' : '334 \r\n');
        else if (verb === 'DATA') {
          inData = true;
          sock.write('354 go\r\n');
        } else if (verb === 'QUIT') {
          sock.end('221 bye\r\n');
          return;
        } else sock.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  relay.port = (server.address() as net.AddressInfo).port;
  relay.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return relay;
}

describe('smtp-out: relay credentials only over TLS', () => {
  let f: Fancy;
  let pem: { cert: string; private: string };
  let caFile: string;
  before(async () => {
    // No dead-destination cache: each step below must try the relay again at once.
    f = await startFancy({ smtp_out: { relay_host: '127.0.0.1:9', relay_user: USER, relay_password: PASS, dead_destination_s: 0 } });
    pem = await generate([{ name: 'commonName', value: 'relay.test' }], {
      keySize: 2048,
      days: 30,
      algorithm: 'sha256',
      extensions: [{ name: 'basicConstraints', cA: true }, { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    } as Parameters<typeof generate>[1]);
    caFile = path.join(f.dir, 'relay-ca.pem');
    writeFileSync(caFile, pem.cert);
  });
  after(async () => f.stop());

  /** useRelay - point smtp-out at PORT with these TLS settings (SIGHUP-style reload). */
  const useRelay = async (port: number, tls: { relay_tls_verify?: boolean; relay_ca_file?: string } = {}): Promise<void> => {
    const cfg = structuredClone(f.config);
    cfg.smtp_out.relay_host = `127.0.0.1:${port}`;
    cfg.smtp_out.relay_tls_verify = tls.relay_tls_verify ?? true;
    cfg.smtp_out.relay_ca_file = tls.relay_ca_file ?? '';
    await f.system.reload(cfg);
  };

  for (const mode of ['no-starttls', 'broken-tls'] as const) {
    test(`a relay ${mode === 'no-starttls' ? 'without STARTTLS' : 'whose STARTTLS handshake fails'}: deferred with the reason, the password never sent`, async () => {
      const relay = await fakeRelay(mode);
      try {
        await useRelay(relay.port, { relay_tls_verify: false });
        const qid = await f.inject('alice@example.test', ['far@anywhere.example'], message(`relay ${mode}`));
        const line = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === qid, 30_000);
        assert.match(String(line.reason), /TLS is required before AUTH/);
        assert.ok(relay.connections >= 1, 'smtp-out did talk to the relay');
        const got = relay.received();
        assert.match(got, /^EHLO /m);
        for (const s of SECRETS) assert.ok(!got.includes(s), `password (${s}) reached the relay:\n${got}`);
        assert.doesNotMatch(got, /^AUTH/im, 'no AUTH command at all');
        assert.doesNotMatch(got, /^MAIL FROM/im, 'nothing sent unauthenticated either');
      } finally {
        await relay.close();
      }
    });
  }

  test('TLS with an unverifiable certificate: deferred; with relay_ca_file or relay_tls_verify = false: delivered', async () => {
    let auths = 0;
    const sink: Sink = await startSink({
      key: pem.private,
      cert: pem.cert,
      disabledCommands: [],
      authOptional: false,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _session, cb) {
        auths++;
        if (auth.username === USER && auth.password === PASS) cb(null, { user: USER });
        else cb(new Error('535 5.7.8 bad credentials'));
      },
    });
    try {
      await useRelay(sink.port);
      const refused = await f.inject('alice@example.test', ['a@anywhere.example'], message('unverified'));
      const line = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === refused, 30_000);
      assert.match(String(line.reason), /TLS is required before AUTH.*(certificate|self.signed)/i);
      assert.equal(auths, 0, 'no AUTH to a relay whose certificate did not verify');

      await useRelay(sink.port, { relay_ca_file: caFile });
      const viaCa = await f.inject('alice@example.test', ['b@anywhere.example'], message('verified by relay_ca_file'));
      await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === viaCa, 30_000);

      await useRelay(sink.port, { relay_tls_verify: false });
      const anyCert = await f.inject('alice@example.test', ['c@anywhere.example'], message('any certificate'));
      await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === anyCert, 30_000);
      await waitFor(() => sink.messages.length >= 2);
      for (const m of sink.messages) {
        assert.equal(m.tls, true);
        assert.equal(m.user, USER);
      }
    } finally {
      await sink.close();
    }
  });
});
