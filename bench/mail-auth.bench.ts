// Mail authentication: the time the inbound checks (SPF on MAIL FROM and HELO, DKIM RSA-2048
// verify, ARC, DMARC) add per message, against a loopback DNS server in another process.
//   1. the checker alone: sequential latency per message, CPU per message, and throughput
//      with 20 messages at once (4 KiB message, one DKIM signature, SPF pass, DMARC p=reject);
//   2. smtpd + queued + authd with Postfix's smtp-source (20 sessions), [mail_auth] check on
//      against off in the same run: messages/s, and the difference per message.
// BENCH_MESSAGES overrides the message count (default 2000).

import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { dkimSign } from 'mailauth';

import { startSystem } from '../src/cli/start.js';
import { recordFor } from '../src/mail/auth/dkim-keys.js';
import { dnsFor } from '../src/mail/auth/dns.js';
import { startCheck } from '../src/mail/auth/inbound.js';
import { silentLogger } from '../src/shared/log.js';
import { testConfig } from '../test/helpers/config.js';
import { tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const here = path.dirname(fileURLToPath(import.meta.url));

const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const zone = [
  'sender.test TXT v=spf1 ip4:127.0.0.1 -all',
  'example.net TXT v=spf1 ip4:127.0.0.1 -all',
  'helo.test TXT v=spf1 ip4:127.0.0.1 -all',
  `s1._domainkey.sender.test TXT ${recordFor(key).record}`,
  '_dmarc.sender.test TXT v=DMARC1; p=reject',
  '_dmarc.example.net TXT v=DMARC1; p=none',
].join('\n');

// The DNS server in a child process.
const child = spawn(process.execPath, [path.join(here, 'mail-auth-dns.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
child.stdin.end(zone);
const port = Number(await new Promise<string>((r) => createInterface({ input: child.stdout }).once('line', r)));
// cache_s 0: every message asks the DNS server (senders never seen before); 60: the default.
const dnsCfg = (cache_s: number) => ({ servers: [`127.0.0.1:${port}`], timeout_ms: 2000, tries: 2, cache_s });
const authCfg = { check: true, authserv_id: '', dmarc_enforce: true, spf_reject: false, quarantine_header: 'X-FancyMail-Quarantine' };

const body = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n'.repeat(64);
const plain = Buffer.from(`From: <a@sender.test>\r\nTo: <alice@example.test>\r\nSubject: bench\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@sender.test>\r\n\r\n${body}`);
const sig = await dkimSign(plain, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'sender.test', selector: 's1', privateKey: key, algorithm: 'rsa-sha256' }] } as never);
const msg = Buffer.concat([Buffer.from(sig.signatures), plain]);

async function checkOne(cache_s: number): Promise<string> {
  const c = startCheck(authCfg, 'mx.bench.test', dnsFor(dnsCfg(cache_s)), { ip: '127.0.0.1', helo: 'helo.test', mailFrom: 'a@sender.test' });
  c.write(msg);
  c.end();
  return (await c.result).fields.dmarc;
}

// 1. The checker alone.
const first = await checkOne(0);
if (first !== 'pass') console.log(`warning: DMARC ${first}, expected pass`);
const N1 = Math.min(MESSAGES, 2000);
console.log(`checker alone: ${N1} messages (${msg.length} bytes, DKIM rsa-sha256, SPF on MAIL FROM and HELO, ARC, DMARC), 5 DNS queries each`);
for (const cache of [0, 60]) {
  let cpu0 = process.cpuUsage();
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < N1; i++) await checkOne(cache);
  let secs = Number(process.hrtime.bigint() - t0) / 1e9;
  let cpu = process.cpuUsage(cpu0);
  const label = cache ? 'DNS cache warm' : 'DNS cache off ';
  console.log(`  ${label}, one at a time: latency ${((secs * 1000) / N1).toFixed(2)} ms/message, CPU ${((cpu.user + cpu.system) / 1000 / N1).toFixed(2)} ms/message`);
  cpu0 = process.cpuUsage();
  t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next++ < N1) await checkOne(cache);
    }),
  );
  secs = Number(process.hrtime.bigint() - t0) / 1e9;
  cpu = process.cpuUsage(cpu0);
  console.log(`  ${label}, 20 at a time:  ${(N1 / secs).toFixed(0)} messages/s, CPU ${((cpu.user + cpu.system) / 1000 / N1).toFixed(2)} ms/message`);
}

// 2. smtpd with and without the checks (smtp-source's own messages: SPF pass, no DKIM, DMARC
// p=none), DNS cache off: every message pays its lookups.
if (spawnSync('sh', ['-c', 'command -v smtp-source'], { stdio: 'ignore' }).status !== 0) {
  console.log('smtp-source not found (Debian package postfix): smtpd part skipped');
} else {
  const rates: Record<string, number> = {};
  const cpus: Record<string, number> = {};
  for (const check of [false, true]) {
    const tmp = tempDir('fmail-bench-auth-');
    writeFileSync(path.join(tmp.dir, 'users'), 'alice@example.test:{PLAIN}secret::::::\n');
    const config = testConfig(tmp.dir, { smtpd: { submission_port: -1, submissions_port: -1 }, log: { level: 'silent' }, mail_auth: { check }, dns: dnsCfg(0) });
    const sys = await startSystem(config, silentLogger(), ['authd', 'queued', 'smtpd']);
    const addr = sys.servers.find((s) => s.name === 'smtpd')!.addresses.smtp!;
    const args = ['-s', '20', '-m', String(MESSAGES), '-l', '4096', '-f', 'sender@example.net', '-t', 'alice@example.test', addr];
    const c0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    const src = spawn('smtp-source', args, { stdio: 'ignore' });
    const code = await new Promise<number | null>((r) => src.on('close', r));
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    const c = process.cpuUsage(c0);
    await sys.stop();
    spawn('rm', ['-rf', tmp.dir], { detached: true, stdio: 'ignore' }).unref();
    rates[String(check)] = MESSAGES / s;
    cpus[String(check)] = (c.user + c.system) / 1000 / MESSAGES;
    console.log(`smtpd, checks ${check ? 'on ' : 'off'}: smtp-source ${args.slice(0, 6).join(' ')}: exit ${code}, ${(MESSAGES / s).toFixed(0)} messages/s, CPU ${cpus[String(check)]!.toFixed(2)} ms/message (smtpd+queued+authd)`);
  }
  const added = 1000 / rates.true! - 1000 / rates.false!;
  console.log(`checks add ${added.toFixed(2)} ms of throughput time and ${(cpus.true! - cpus.false!).toFixed(2)} ms CPU per message; on/off rate ratio ${(rates.true! / rates.false!).toFixed(2)}`);
}
child.kill('SIGTERM');
