// Outbound MTA-STS: policies served over HTTPS by a local server with a test CA, names from
// the loopback DNS server (mta-sts.DOMAIN -> 127.0.0.1). One sink whose certificate (from the
// test CA) names only mx.good.test:
//   good.test     enforce, MX mx.good.test      -> verified TLS, delivered
//   enforce.test  enforce, MX mx.enforce.test   -> certificate does not match: deferred
//   testing.test  testing, MX mx.testing.test   -> delivered, the failure logged
//   unlisted.test enforce, MX not in the policy -> deferred

import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';

import { type DnsServer, startDnsServer } from '../helpers/dns-server.js';
import { type TestCa, makeTestCa } from '../helpers/test-ca.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

const POLICIES: Record<string, string> = {
  'mta-sts.good.test': 'version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n',
  'mta-sts.enforce.test': 'version: STSv1\nmode: enforce\nmx: mx.enforce.test\nmax_age: 86400\n',
  'mta-sts.testing.test': 'version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 86400\n',
  'mta-sts.unlisted.test': 'version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n',
};

function zone(): string {
  const lines: string[] = [];
  for (const d of ['good', 'enforce', 'testing', 'unlisted']) {
    lines.push(`${d}.test MX 10 mx.${d}.test`, `mx.${d}.test A 127.0.0.1`, `_mta-sts.${d}.test TXT v=STSv1; id=20261202`, `mta-sts.${d}.test A 127.0.0.1`);
  }
  return lines.join('\n');
}

describe('mail-auth: outbound MTA-STS', () => {
  const tmp = tempDir('fmail-sts-');
  let ca: TestCa;
  let dns: DnsServer;
  let web: https.Server;
  let sink: Sink;
  let f: Fancy;
  const fetched: string[] = [];
  before(async () => {
    ca = makeTestCa(tmp.dir, ['mx.good.test', ...Object.keys(POLICIES)]);
    dns = await startDnsServer(zone());
    web = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
      const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
      fetched.push(`${host}${req.url}`);
      const body = req.url === '/.well-known/mta-sts.txt' ? POLICIES[host] : undefined;
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    sink = await startSink({ key: ca.key, cert: ca.cert });
    f = await startFancy({
      dns: { servers: [dns.address], timeout_ms: 1000, tries: 1 },
      mta_sts: { https_port: (web.address() as AddressInfo).port, ca_file: ca.caFile },
      smtp_out: { port: sink.port, first_retry_s: 60, max_backoff_s: 60 },
    });
  });
  after(async () => {
    await f?.stop();
    await sink?.close();
    await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
    await dns?.close();
    tmp.cleanup();
  });

  test('enforce, certificate verified for the listed MX: delivered over TLS', async () => {
    const qid = await f.inject('alice@example.test', ['bob@good.test'], message('sts good'));
    const got = await waitFor(() => sink.messages.find((m) => m.data.includes('sts good')), 20_000);
    assert.equal(got.tls, true);
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid);
    assert.ok(fetched.includes('mta-sts.good.test/.well-known/mta-sts.txt'));
  });

  test('enforce with a certificate that does not match the MX: deferred, not sent', async () => {
    const qid = await f.inject('alice@example.test', ['bob@enforce.test'], message('sts enforce bad cert'));
    const d = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === qid);
    assert.match(String(d.reason), /mx\.enforce\.test|altname|certificate/i);
    assert.equal(sink.messages.filter((m) => m.data.includes('sts enforce bad cert')).length, 0);
  });

  test('testing with the same bad certificate: delivered, the failure logged', async () => {
    const qid = await f.inject('alice@example.test', ['bob@testing.test'], message('sts testing'));
    await waitFor(() => sink.messages.find((m) => m.data.includes('sts testing')), 20_000);
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid);
    const log = await f.waitLog((l) => l.event === 'smtp-out.mta_sts' && l.domain === 'testing.test');
    assert.equal(log.mode, 'testing');
    assert.equal(log.result, 'fail');
    assert.match(String(log.reason), /altname|does not match|mx\.testing\.test/i);
  });

  test('enforce whose policy lists none of the MX hosts: deferred', async () => {
    const qid = await f.inject('alice@example.test', ['bob@unlisted.test'], message('sts unlisted'));
    const d = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === qid);
    assert.match(String(d.reason), /MTA-STS policy of unlisted\.test \(enforce\) lists none of its MX hosts/);
  });
});
