// `fmail dns example.test --check` against the loopback DNS server and a policy web server
// with a test CA: every check green for a correct zone, a plain message for each broken one.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type DnsServer, startDnsServer } from '../helpers/dns-server.js';
import { fmailAsync } from '../helpers/fmail-process.js';
import { makeTestCa } from '../helpers/test-ca.js';
import { tempDir } from '../helpers/tmp.js';

describe('mail-auth: fmail dns --check', () => {
  const tmp = tempDir('fmail-dnscheck-');
  const configFile = path.join(tmp.dir, 'fmail.toml');
  let dns: DnsServer;
  let web: https.Server;
  let policy = '';
  let record = '';
  before(async () => {
    const ca = makeTestCa(tmp.dir, ['mta-sts.example.test']);
    dns = await startDnsServer('');
    web = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
      if (req.url !== '/.well-known/mta-sts.txt') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(policy);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    writeFileSync(
      configFile,
      [
        `data_dir = ${JSON.stringify(tmp.dir)}`,
        'hostname = "mx.fancymail.test"',
        '[dns]',
        `servers = ["${dns.address}"]`,
        'timeout_ms = 1000',
        'tries = 1',
        '[mta_sts]',
        `https_port = ${(web.address() as AddressInfo).port}`,
        `ca_file = ${JSON.stringify(ca.caFile)}`,
      ].join('\n') + '\n',
    );
    const r = await fmailAsync(['dkim', 'keygen', 'example.test', '--selector', 's1', '-c', configFile]);
    assert.equal(r.status, 0, r.stderr);
    record = [...r.stdout.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  });
  after(async () => {
    await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
    await dns?.close();
    tmp.cleanup();
  });

  const good = (): string[] => [
    'example.test MX 10 mx.fancymail.test',
    'mx.fancymail.test A 127.0.0.1',
    'example.test TXT v=spf1 mx -all',
    `s1._domainkey.example.test TXT ${record}`,
    '_dmarc.example.test TXT v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test',
    '_mta-sts.example.test TXT v=STSv1; id=20261202',
    'mta-sts.example.test A 127.0.0.1',
    '_smtp._tls.example.test TXT v=TLSRPTv1; rua=mailto:tlsrpt@example.test',
  ];

  test('a correct zone: all green', async () => {
    dns.set(good().join('\n'));
    policy = 'version: STSv1\nmode: enforce\nmx: mx.fancymail.test\nmax_age: 604800\n';
    const r = await fmailAsync(['dns', 'example.test', '--check', '-c', configFile]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split('\n');
    for (const what of ['MX', 'HOST', 'SPF', 'DKIM s1', 'DMARC', 'MTA-STS', 'MTA-STS policy', 'TLS-RPT']) {
      assert.ok(lines.some((l) => new RegExp(`^ok +${what} +`).test(l)), `${what} not ok:\n${r.stdout}`);
    }
    assert.match(r.stdout, /all 8 checks passed\./);
  });

  test('a broken zone: each record gets its own plain message', async () => {
    const other = record.replace(/p=MIIB(.)/, (_m, c: string) => `p=MIIB${c === 'A' ? 'B' : 'A'}`);
    dns.set(
      [
        'example.test MX 10 mx.elsewhere.test',
        'mx.fancymail.test A 127.0.0.1',
        'example.test TXT v=spf1 ip4:192.0.2.1 -all',
        `s1._domainkey.example.test TXT ${other}`,
        '_mta-sts.example.test TXT v=STSv1; id=20261202',
        'mta-sts.example.test A 127.0.0.1',
        '_smtp._tls.example.test TXT v=TLSRPTv1',
      ].join('\n'),
    );
    policy = 'version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 604800\n';
    const r = await fmailAsync(['dns', 'example.test', '--check', '-c', configFile]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const out = r.stdout;
    assert.match(out, /^FAIL +MX +the MX of example\.test is 10 mx\.elsewhere\.test, not this server \(mx\.fancymail\.test\): mail for example\.test does not come here; publish: example\.test\. IN MX 10 mx\.fancymail\.test\./m);
    assert.match(out, /^ok +HOST +mx\.fancymail\.test has address 127\.0\.0\.1/m);
    assert.match(out, /^FAIL +SPF +"v=spf1 ip4:192\.0\.2\.1 -all" does not allow this server to send for example\.test \(127\.0\.0\.1: fail\)/m);
    assert.match(out, /^FAIL +DKIM s1 +s1\._domainkey\.example\.test publishes a different key than our s1 key file: signatures will fail; publish: s1\._domainkey/m);
    assert.match(out, /^FAIL +DMARC +example\.test has no DMARC record: receivers apply no policy to mail forged From: example\.test; publish: _dmarc\.example\.test\. IN TXT "v=DMARC1; p=quarantine/m);
    assert.match(out, /^ok +MTA-STS +"v=STSv1; id=20261202"/m);
    assert.match(out, /^FAIL +MTA-STS policy +the policy lists mx mx\.elsewhere\.test but not mx\.fancymail\.test: senders enforcing it will not deliver here/m);
    assert.match(out, /^FAIL +TLS-RPT +"v=TLSRPTv1" has no rua= \(mailto: or https:\) to send reports to/m);
    assert.match(out, /6 of 8 checks failed\./);
  });

  test('missing records: MX, SPF, MTA-STS, TLS-RPT, and an unreachable policy host', async () => {
    dns.set(['mx.fancymail.test A 127.0.0.1', 'example.test A 127.0.0.1', '_mta-sts.example.test TXT v=STSv1; id=1', 'mta-sts.example.test A 127.0.0.1'].join('\n'));
    policy = 'not a policy';
    const r = await fmailAsync(['dns', 'example.test', '--check', '-c', configFile]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /^FAIL +MX +example\.test has no MX record; publish: example\.test\. IN MX 10 mx\.fancymail\.test\./m);
    assert.match(r.stdout, /^FAIL +SPF +example\.test has no SPF record: receivers cannot tell our mail from forgeries/m);
    assert.match(r.stdout, /^FAIL +DKIM s1 +s1\._domainkey\.example\.test has no DKIM record: receivers cannot verify our signatures/m);
    assert.match(r.stdout, /^FAIL +MTA-STS policy +the policy file is not valid \(Invalid version field\)/m);
    assert.match(r.stdout, /^FAIL +TLS-RPT +example\.test has no TLS-RPT record: nobody tells you when TLS to your MX fails/m);
  });
});
