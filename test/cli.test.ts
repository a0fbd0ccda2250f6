// The fmail command and the configuration loader, driven as an administrator would.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { parse as parseToml } from 'smol-toml';

import { ConfigError, loadConfig } from '../src/config/load.js';
import { IpcServer, ok } from '../src/ipc/index.js';
import { silentLogger } from '../src/shared/log.js';
import { fmailAsync, fmailSync, startFmail, writeFmailConfig } from './helpers/fmail-process.js';
import { freePort, tempDir } from './helpers/tmp.js';

const tmp = tempDir('fmail-cli-');
after(() => tmp.cleanup());

describe('configuration', () => {
  test('defaults apply without a file; FMAIL_DATA moves the data folder', () => {
    const cfg = loadConfig(undefined, { FMAIL_DATA: path.join(tmp.dir, 'elsewhere') });
    assert.equal(cfg.data_dir, path.join(tmp.dir, 'elsewhere'));
    assert.equal(cfg.smtpd.port, 2525);
    assert.equal(cfg.ipc.queued, 'socket://127.0.0.1:14101');
    assert.equal(cfg.log.file, path.join(tmp.dir, 'elsewhere', 'fmail.log'));
  });

  test('a bad value names the key and what was expected; an unknown key is named', () => {
    const file = path.join(tmp.dir, 'bad.toml');
    writeFileSync(file, 'typo_key = 1\n[smtpd]\nport = "twenty-five"\n[ipc]\nqueued = "tcp://x"\n');
    assert.throws(
      () => loadConfig(file, {}),
      (err: Error) =>
        err instanceof ConfigError &&
        /smtpd\.port: .*expected number/.test(err.message) &&
        /unknown key "typo_key"/.test(err.message) &&
        /ipc\.queued: .*socket:\/\/HOST:PORT/.test(err.message),
    );
  });

  test('fmail init writes a commented file that loads to the defaults', () => {
    const file = path.join(tmp.dir, 'init.toml');
    const res = fmailSync(['init', file]);
    assert.equal(res.status, 0, res.stderr);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\[smtpd\]$/m);
    assert.match(text, /^# port = 2525$/m);
    // Uncommenting every line must still be a valid configuration equal to the defaults.
    const active = text.replace(/^# (\w+ = .*)$/gm, '$1').replace(/^hostname = .*$/m, '');
    const parsed = parseToml(active) as Record<string, unknown>;
    assert.equal((parsed.smtpd as { port: number }).port, 2525);
    const again = fmailSync(['init', file]);
    assert.notEqual(again.status, 0, 'refuses to overwrite without --force');
  });
});

describe('fmail command', () => {
  test('--version and --help', () => {
    const v = fmailSync(['--version']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
    for (const cmd of [[], ['start'], ['ipc'], ['status'], ['trace'], ['init']]) {
      const h = fmailSync([...cmd, '--help']);
      assert.equal(h.status, 0, `${cmd.join(' ')} --help`);
      assert.match(h.stdout, /Usage: fmail/);
    }
  });

  test('fmail ipc sends one request, encodes parameters, and sets the exit code', async () => {
    const server = new IpcServer({ serverName: 'clitest', version: '9.9.9', logger: silentLogger() });
    server.on('echo', { params: [0, 5], handle: (ctx) => ok(...ctx.params) });
    const address = await server.listen(`unix://${path.join(tmp.dir, 'cli.sock')}`);
    try {
      const ping = await fmailAsync(['ipc', address, 'ping']);
      assert.equal(ping.status, 0);
      assert.equal(ping.stdout, 'ok: clitest 9.9.9\n');
      const echo = await fmailAsync(['ipc', address, 'echo', 'a;b', ' c ']);
      assert.equal(echo.stdout, 'ok: a%3Bb ; %20c%20\n');
      const line = await fmailAsync(['ipc', address, 'echo: x ; y%3Bz']);
      assert.equal(line.stdout, 'ok: x ; y%3Bz\n');
      const unknown = await fmailAsync(['ipc', address, 'nosuch']);
      assert.equal(unknown.status, 1);
      assert.equal(unknown.stdout, 'error: unknown message nosuch\n');
      const bad = await fmailAsync(['ipc', 'http://x', 'ping']);
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /socket:\/\/HOST:PORT or unix:\/\/\/path/);
    } finally {
      await server.close(100);
    }
  });

  test('fmail start refuses IPC beyond loopback with secret = "off"', async () => {
    const setup = await writeFmailConfig(path.join(tmp.dir, 'exposed'));
    writeFileSync(
      setup.configFile,
      readFileSync(setup.configFile, 'utf8').replace(/^authd = .*$/m, 'authd = "socket://0.0.0.0:14190"\nsecret = "off"'),
    );
    const res = fmailSync(['start', 'authd', '-c', setup.configFile]);
    assert.notEqual(res.status, 0);
    assert.match(res.stderr, /ipc\.authd .*beyond loopback: ipc\.secret = "off" is for loopback only/);
  });

  test('fmail start runs every server, reports them, and exits 0 on SIGTERM', async () => {
    const setup = await writeFmailConfig(path.join(tmp.dir, 'all'));
    const metricsPort = await freePort();
    writeFileSync(setup.configFile, readFileSync(setup.configFile, 'utf8').replace('listen = ""', `listen = "127.0.0.1:${metricsPort}"`));
    const proc = await startFmail(setup);
    const banner = proc.output.join('\n');
    for (const name of ['authd', 'queued', 'mailboxd', 'smtp-out', 'router', 'smtpd', 'pop3d', 'imapd']) {
      assert.match(banner, new RegExp(`^${name}\\s`, 'm'), `${name} reported`);
    }
    const status = fmailSync(['status', '-c', setup.configFile]);
    assert.equal(status.status, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /^queued\s+up\s/m);
    assert.match(status.stdout, /^imapd\s+up\s.*\* OK/m);
    // Metrics from both threads (smtpd runs in the second one) in one scrape.
    const scrape = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(scrape, /^fmail_connections\{server="smtpd"\} /m);
    assert.match(scrape, /^fmail_ipc_request_seconds_count\{server="queued",message="status"\} /m);
    assert.match(scrape, /^fmail_process_resident_memory_bytes /m);
    assert.equal(await proc.stop('SIGTERM'), 0);
  });
});
