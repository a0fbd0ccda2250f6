// The `list` answer as pop3d reads it: mailboxd's own lines in place, anything else through the
// general IPC parser, with the same result; a path is kept only if it stays in the Maildir.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { encodeParam } from '../../src/ipc/index.js';
import { infoLine } from '../../src/pop3d/maildrop.js';

test('mailinfo lines: as mailboxd writes them, encoded, spaced otherwise, without a path', () => {
  assert.deepEqual(infoLine('mailinfo: 12 ; 4096 ; 1700000000.M1P2Q3.host ; cur/1700000000.M1P2Q3.host,S=4096:2,S'), {
    n: 12,
    size: 4096,
    uid: '1700000000.M1P2Q3.host',
    deleted: false,
    file: 'cur/1700000000.M1P2Q3.host,S=4096:2,S',
  });
  // Encoded parameters (a `;` in a name) and other spacing take the general parser: same result.
  const rel = 'new/odd;name';
  assert.deepEqual(infoLine(`mailinfo: 3 ; 10 ; uid3 ; ${encodeParam(rel)}`), { n: 3, size: 10, uid: 'uid3', deleted: false, file: rel });
  assert.deepEqual(infoLine('mailinfo:  3\t;10;uid3;new/x'), { n: 3, size: 10, uid: 'uid3', deleted: false, file: 'new/x' });
  assert.deepEqual(infoLine('mailinfo: 4 ; 0 ; u4'), { n: 4, size: 0, uid: 'u4', deleted: false, file: undefined });
});

test('a path out of the Maildir is dropped (the message is then read through mailboxd); a bad line is n = -1', () => {
  for (const rel of ['cur/../../etc/passwd', '../x', 'tmp/x', 'cur/', 'cur/..', 'new/.', '/etc/passwd', 'cur/a/b']) {
    assert.equal(infoLine(`mailinfo: 1 ; 5 ; u ; ${encodeParam(rel)}`).file, undefined, rel);
  }
  for (const line of ['mailinfo: x ; 5 ; u', 'mailinfo: 1 ; -5 ; u', 'mailinfo: 0 ; 5 ; u', 'other: 1 ; 5 ; u', 'mailinfo: 1', '']) {
    assert.equal(infoLine(line).n, -1, line);
  }
  // A UID that is not a POP3 unique-id (RFC 1939: 1-70 of 0x21..0x7E) is replaced by a stable digest.
  const long = infoLine(`mailinfo: 1 ; 5 ; ${'x'.repeat(80)}`).uid;
  assert.match(long, /^[0-9a-f]{40}$/);
  assert.equal(infoLine(`mailinfo: 1 ; 5 ; ${'x'.repeat(80)}`).uid, long);
});
