// `fmail user` / `fmail alias` as real child processes, while authd runs: the server sees
// every change without a restart.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { start } from '../../src/authd/index.js';
import { loadConfig } from '../../src/config/load.js';
import type { IpcClient } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import type { RunningServer } from '../../src/shared/server-module.js';
import { testClient } from '../helpers/config.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const FMAIL = path.resolve(fileURLToPath(import.meta.url), '../../../../bin/fmail.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** fmail - run the CLI with ARGS, STDIN piped in (or none: stdin closed, not a TTY). */
function fmail(args: string[], stdin = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FMAIL, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

describe('fmail user / alias with authd running', () => {
  const tmp = tempDir('fmail-authd-cli-');
  const conf = path.join(tmp.dir, 'fmail.toml');
  let server: RunningServer;
  let client: IpcClient;
  const c = ['-c', conf];

  before(async () => {
    writeFileSync(
      conf,
      `data_dir = "${tmp.dir}"\n[log]\nlevel = "silent"\n[metrics]\nlisten = ""\n[ipc]\nauthd = "unix://${path.join(tmp.dir, 'authd.sock')}"\n`,
    );
    const config = loadConfig(conf);
    server = await start({ config, logger: silentLogger() });
    client = testClient(config, server.addresses.ipc!);
  });
  after(async () => {
    client.close();
    await server.close();
    tmp.cleanup();
  });

  test('user add, then auth works at once; the hash is Argon2id in passwd-file form', async () => {
    assert.equal((await client.request('verify', ['dave@example.test'])).ok, false);
    const pw = ' semi;colon 100% ünïcødé ✓ ';
    const r = await fmail(['user', 'add', 'Dave@Example.test', '--password-stdin', ...c], pw + '\n');
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await client.request('verify', ['dave@example.test'])).ok);
    assert.deepEqual(await client.request('auth', ['dave@example.test', pw]), { ok: true, params: ['dave@example.test'] });
    assert.equal((await client.request('auth', ['dave@example.test', pw.trim()])).ok, false);
    const text = readFileSync(path.join(tmp.dir, 'users'), 'utf8');
    assert.match(text, /^dave@example\.test:\{ARGON2ID\}\$argon2id\$v=19\$m=32768,t=3,p=1\$[^:]+::::::$/m);
    assert.equal(statSync(path.join(tmp.dir, 'users')).mode & 0o077, 0, 'users file is private');
    assert.equal((await client.request('domain', ['example.test'])).ok, true);
  });

  test('add refuses an existing user and a bad name; no password source is an error', async () => {
    assert.notEqual((await fmail(['user', 'add', 'dave@example.test', '--password-stdin', ...c], 'x\n')).code, 0);
    const bad = await fmail(['user', 'add', '../etc@example.test', '--password-stdin', ...c], 'x\n');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a valid address/);
    const none = await fmail(['user', 'add', 'erin@example.test', ...c]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /--password-stdin/);
    // There is no way to give the password in argv.
    assert.notEqual((await fmail(['user', 'add', 'erin@example.test', '--password', 'x', ...c])).code, 0);
    assert.equal((await fmail(['user', 'add', 'erin@example.test', '--password-stdin', ...c], '\n')).code, 2, 'empty password');
    assert.equal((await client.request('verify', ['erin@example.test'])).ok, false);
  });

  test('passwd changes the password; list prints users', async () => {
    assert.equal((await fmail(['user', 'add', 'erin@example.test', '--password-stdin', ...c], 'old\n')).code, 0);
    await waitFor(async () => (await client.request('auth', ['erin@example.test', 'old'])).ok);
    assert.equal((await fmail(['user', 'passwd', 'erin@example.test', '--password-stdin', ...c], 'new\r\n')).code, 0);
    await waitFor(async () => (await client.request('auth', ['erin@example.test', 'new'])).ok);
    assert.equal((await client.request('auth', ['erin@example.test', 'old'])).ok, false);
    assert.notEqual((await fmail(['user', 'passwd', 'nobody@example.test', '--password-stdin', ...c], 'x\n')).code, 0);
    const list = await fmail(['user', 'list', ...c]);
    assert.equal(list.stdout, 'dave@example.test\nerin@example.test\n');
  });

  test('alias add/list/del', async () => {
    let r = await fmail(['alias', 'add', 'Sales@example.test', 'dave@example.test', 'erin@example.test', ...c]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await client.request('verify', ['sales@example.test'])).ok);
    assert.deepEqual((await client.request('resolve', ['sales@example.test'])).params.sort(), ['dave@example.test', 'erin@example.test']);
    assert.equal((await fmail(['alias', 'list', ...c])).stdout, 'sales@example.test: dave@example.test, erin@example.test\n');
    assert.notEqual((await fmail(['alias', 'add', 'dave@example.test', 'erin@example.test', ...c])).code, 0, 'alias over a user');
    r = await fmail(['alias', 'del', 'sales@example.test', 'erin@example.test', ...c]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await client.request('resolve', ['sales@example.test'])).params.length === 1);
    assert.equal((await fmail(['alias', 'del', 'sales@example.test', ...c])).code, 0);
    await waitFor(async () => !(await client.request('verify', ['sales@example.test'])).ok);
    assert.notEqual((await fmail(['alias', 'del', 'sales@example.test', ...c])).code, 0);
  });

  test('user del: the user is gone at once', async () => {
    assert.equal((await fmail(['user', 'del', 'ERIN@example.test', ...c])).code, 0);
    await waitFor(async () => !(await client.request('verify', ['erin@example.test'])).ok);
    assert.equal((await client.request('auth', ['erin@example.test', 'new'])).ok, false);
    assert.equal((await client.request('verify', ['dave@example.test'])).ok, true);
    assert.notEqual((await fmail(['user', 'del', 'erin@example.test', ...c])).code, 0);
  });

  test('--help for every command', async () => {
    for (const cmd of [['user', 'add'], ['user', 'passwd'], ['user', 'del'], ['user', 'list'], ['alias', 'add'], ['alias', 'del'], ['alias', 'list']]) {
      const r = await fmail([...cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /--config/);
    }
  });
});
