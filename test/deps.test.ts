// The private fields we lean on, pinned: smtpd/protocol.ts subclasses smtp-server's connection
// and overrides or reads its `_` members; smtp-out/session.ts reads nodemailer's
// `_supportedExtensions`, `_maxAllowedSize`, `_destroyed` and `_socket`. Both packages are
// pinned to exact versions in package.json; this test fails when an upgrade renames or
// retypes any of those members, so an upgrade is a deliberate change (re-check protocol.ts and
// session.ts, then move the pin), never a silent one.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';

import SMTPClient from 'nodemailer/lib/smtp-connection';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

import { ROOT } from './helpers/fmail-process.js';

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const installed = (name: string): string => (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** A connection's private members, as the code reads them. */
type Privates = Record<string, unknown> & { _parser?: Record<string, unknown> };

describe('dependencies used through private fields', () => {
  for (const name of ['smtp-server', 'nodemailer']) {
    test(`${name} is pinned to an exact version, the one installed`, () => {
      const spec = pkg.dependencies[name];
      assert.match(spec ?? '', /^\d+\.\d+\.\d+$/, `${name} must be pinned exactly, not ${spec}`);
      assert.equal(installed(name), spec);
    });
  }

  test("smtp-server: the methods protocol.ts overrides or calls and the fields it reads", async () => {
    const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;
    for (const m of ['init', '_setListeners', 'connectionReady', 'send', 'handler_EHLO', 'handler_AUTH', 'handler_DATA', '_resetSession', '_armTimeout', '_onTimeout']) {
      assert.equal(typeof proto[m], 'function', `SMTPConnection.prototype.${m}`);
    }
    assert.equal(typeof (SMTPServer.prototype as unknown as Record<string, unknown>).connect, 'function', 'SMTPServer.prototype.connect');
    const server = new SMTPServer({ authOptional: true, logger: false });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const sock = net.connect((server.server.address() as net.AddressInfo).port, '127.0.0.1');
    try {
      await new Promise<void>((r) => sock.once('data', () => r()));
      const c = [...(server as unknown as { connections: Set<Privates> }).connections][0]!;
      assert.ok(c, 'server.connections holds the session');
      assert.ok(c._socket instanceof net.Socket, '_socket');
      assert.equal(c._server, server, '_server');
      for (const f of ['_closing', '_closed', '_upgrading', '_handlerPending']) assert.equal(typeof c[f], 'boolean', f);
      assert.ok('_dataStream' in c, '_dataStream');
      assert.equal(typeof c._parser?._dataMode, 'boolean', '_parser._dataMode');
      assert.equal(typeof (c.session as Record<string, unknown> | undefined)?.envelope, 'object', 'session.envelope');
    } finally {
      sock.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('nodemailer: the fields session.ts reads after EHLO', async () => {
    const server = new SMTPServer({ authOptional: true, logger: false, size: 12345, hideSTARTTLS: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const conn = new SMTPClient({ host: '127.0.0.1', port: (server.server.address() as net.AddressInfo).port, ignoreTLS: true });
    try {
      await new Promise<void>((resolve, reject) => {
        conn.once('error', reject);
        conn.connect(() => resolve());
      });
      const p = conn as unknown as Privates;
      assert.ok(Array.isArray(p._supportedExtensions), '_supportedExtensions is an array');
      assert.ok((p._supportedExtensions as string[]).includes('8BITMIME'), `_supportedExtensions: ${JSON.stringify(p._supportedExtensions)}`);
      assert.equal(p._maxAllowedSize, 12345, '_maxAllowedSize from SIZE');
      assert.equal(p._destroyed, false, '_destroyed');
      assert.ok(p._socket instanceof net.Socket, '_socket');
    } finally {
      conn.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
