// Issue 12, rule 1: IPC is closed to other local users by default. `fmail start` generates
// DATA/ipc.secret (0600, DATA 0700); every server requires `hello: SECRET` first, loopback
// included; every FancyMail client finds the secret by itself; only `secret = "off"` opens it.

import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { loadConfig } from '../../src/config/load.js';
import { IpcClient, IpcServer } from '../../src/ipc/index.js';
import { silentLogger } from '../../src/shared/log.js';
import { VERSION } from '../../src/shared/version.js';
import { type FmailProcess, type FmailSetup, fmailAsync, startFmail, writeFmailConfig } from '../helpers/fmail-process.js';
import { freePort, tempDir, waitFor } from '../helpers/tmp.js';

const tmp = tempDir('fmail-sec-ipc-');
after(() => tmp.cleanup());

/** raw - write SEND on a fresh TCP connection to PORT; everything received until the server closes. */
function raw(port: number, send: string, timeoutMs = 10_000): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ got, closed: false });
    }, timeoutMs);
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ got, closed: true });
    });
    sock.write(send);
  });
}

/** tcpIpc - the setup's IPC for authd, queued and mailboxd on loopback TCP, like the defaults. */
async function tcpIpc(setup: FmailSetup, extra = ''): Promise<Record<'authd' | 'queued' | 'mailboxd', number>> {
  const ports = { authd: await freePort(), queued: await freePort(), mailboxd: await freePort() };
  let toml = readFileSync(setup.configFile, 'utf8');
  for (const [k, p] of Object.entries(ports)) toml = toml.replace(new RegExp(`^${k} = .*$`, 'm'), `${k} = "socket://127.0.0.1:${p}"`);
  writeFileSync(setup.configFile, toml.replace('[ipc]\n', `[ipc]\n${extra}`));
  return ports;
}

describe('IPC secret by default', () => {
  let setup: FmailSetup;
  let ports: Record<'authd' | 'queued' | 'mailboxd', number>;
  let proc: FmailProcess;
  let secret: string;

  before(async () => {
    setup = await writeFmailConfig(path.join(tmp.dir, 'default'));
    ports = await tcpIpc(setup);
    proc = await startFmail(setup);
    secret = readFileSync(path.join(setup.dir, 'ipc.secret'), 'utf8').trim();
    const add = await fmailAsync(['user', 'add', 'alice@example.test', '--password-stdin', '-c', setup.configFile], 'pw\n');
    assert.equal(add.status, 0, add.stderr);
    const c = new IpcClient(`socket://127.0.0.1:${ports.mailboxd}`, { secret });
    const body = Buffer.from('Subject: private\r\n\r\nthe content of a private mail\r\n');
    assert.equal((await c.store('store', ['alice@example.test', 'alice@example.test', String(body.length)], body)).ok, true);
    c.close();
  });
  after(async () => {
    await proc?.stop();
  });

  test('fmail start made DATA/ipc.secret (0600, random) in a 0700 data folder', () => {
    assert.match(secret, /^[0-9a-f]{64}$/);
    assert.equal(statSync(path.join(setup.dir, 'ipc.secret')).mode & 0o777, 0o600);
    assert.equal(statSync(setup.dir).mode & 0o777, 0o700);
  });

  test('a raw socket to mailboxd without the secret gets authentication required and no mailbox data', async () => {
    for (const send of ['list: alice@example.test\r\n', 'retr: alice@example.test ; 1\r\n', 'ping\r\nlist: alice@example.test\r\n']) {
      const r = await raw(ports.mailboxd, send);
      assert.equal(r.got, 'error: authentication required: send hello: SECRET first\r\n', send);
      assert.ok(r.closed, 'connection closed');
    }
    // A wrong secret: refused and closed, the pipelined request never answered.
    const wrong = await raw(ports.mailboxd, `hello: ${'0'.repeat(64)}\r\nlist: alice@example.test\r\n`);
    assert.equal(wrong.got, 'error: bad secret\r\n');
    assert.ok(wrong.closed);
    assert.doesNotMatch(wrong.got, /mailinfo/);
  });

  test('authd and queued refuse a client without the secret too (no password checks, no queue access)', async () => {
    const auth = await raw(ports.authd, 'auth: alice@example.test ; pw\r\n');
    assert.match(auth.got, /^error: authentication required/);
    const slot = await raw(ports.queued, 'slot: incoming\r\n');
    assert.match(slot.got, /^error: authentication required/);
  });

  test('with `hello: SECRET` first, the same raw socket is served (README nc example)', async () => {
    const r = await raw(ports.mailboxd, `hello: ${secret}\r\nlist: alice@example.test\r\nquit\r\n`);
    assert.match(r.got, /^ok\r\nok: 1\r\nmailinfo: 1 ; \d+ ; \S+\r\nok\r\nok\r\n$/);
  });

  test('fmail ipc and fmail queue find the secret by themselves: no flags', async () => {
    // As the README runs it: the data folder from FMAIL_DATA (./data by default), no -c, no --secret.
    const ping = await fmailAsync(['ipc', `socket://127.0.0.1:${ports.queued}`, 'ping'], undefined, { FMAIL_DATA: setup.dir });
    assert.equal(ping.stdout, `ok: queued ${VERSION}\n`, ping.stderr);
    const list = await fmailAsync(['ipc', `socket://127.0.0.1:${ports.mailboxd}`, 'list', 'alice@example.test'], undefined, { FMAIL_DATA: setup.dir });
    assert.match(list.stdout, /^ok: 1\nmailinfo: 1 ; /);
    const queue = await fmailAsync(['queue', 'list', '-c', setup.configFile]);
    assert.equal(queue.status, 0, queue.stdout + queue.stderr);
    // Without the data folder (another user's view): refused.
    const other = await fmailAsync(['ipc', `socket://127.0.0.1:${ports.queued}`, 'ping'], undefined, { FMAIL_DATA: path.join(tmp.dir, 'nowhere') });
    assert.equal(other.status, 1);
    assert.match(other.stdout, /^error: authentication required/);
  });

  test('FMAIL_IPC_SECRET gives the secret when the config does not', () => {
    assert.equal(loadConfig(undefined, { FMAIL_IPC_SECRET: 'from-env' }).ipc.secret, 'from-env');
    const file = path.join(tmp.dir, 'explicit.toml');
    writeFileSync(file, '[ipc]\nsecret = "from-file"\n');
    assert.equal(loadConfig(file, { FMAIL_IPC_SECRET: 'from-env' }).ipc.secret, 'from-file');
  });
});

describe('secret = "off"', () => {
  test('opens loopback IPC again, and fmail start warns', async () => {
    const setup = await writeFmailConfig(path.join(tmp.dir, 'off'));
    const ports = await tcpIpc(setup, 'secret = "off"\n');
    const proc = await startFmail(setup, ['queued']);
    try {
      assert.match(proc.output.join('\n'), /warning: ipc\.secret = "off": any local user can talk to every server/);
      const r = await raw(ports.queued, 'ping\r\nquit\r\n');
      assert.equal(r.got, `ok: queued ${VERSION}\r\nok\r\n`);
    } finally {
      await proc.stop();
    }
  });
});

describe('IpcServer with a secret', () => {
  test('a connection that never says hello is closed after helloTimeoutMs; one that does stays', async () => {
    const server = new IpcServer({ serverName: 'sec', version: '0', logger: silentLogger(), secret: 's', helloTimeoutMs: 300 });
    const address = await server.listen(`unix://${path.join(tmp.dir, 'hello.sock')}`);
    const sockPath = address.replace('unix://', '');
    try {
      const connect = (): Promise<net.Socket> =>
        new Promise((resolve) => {
          const s = net.connect(sockPath, () => resolve(s));
          s.on('error', () => {});
        });
      const silent = await connect();
      const polite = await connect();
      polite.write('hello: s\r\n');
      const t0 = Date.now();
      await new Promise<void>((r) => silent.once('close', () => r()));
      const took = Date.now() - t0;
      assert.ok(took >= 200 && took < 3000, `closed after ${took} ms`);
      // The polite one is still served after the hello deadline.
      await new Promise((r) => setTimeout(r, 300));
      let got = '';
      polite.on('data', (d) => (got += d.toString()));
      polite.write('ping\r\n');
      await waitFor(() => got.includes('ok: sec 0\r\n'), 5000);
      assert.equal(got, 'ok\r\nok: sec 0\r\n');
      polite.destroy();
    } finally {
      await server.close(100);
    }
  });
});
