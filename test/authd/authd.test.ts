// authd over IPC: verify, auth, resolve, domain; aliases; bad names; rate limiting; reload.

import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { encodeParam } from '../../src/ipc/index.js';
import { waitFor } from '../helpers/tmp.js';
import { type Authd, startAuthd } from './helpers.js';

const FIXTURES = path.resolve(fileURLToPath(import.meta.url), '../../../../test/authd/fixtures');
const TRICKY = ' p;a%s 25% ;; wörd ✓ e\u0301 日本 ';

describe('authd verify/auth', () => {
  let a: Authd;
  before(async () => {
    a = await startAuthd(
      { 'alice@example.test': 'right horse', 'bob@example.test': TRICKY, 'carol@other.test': 'c' },
      '# comment\nsales@example.test: alice@example.test, Bob@Example.test\nteam@example.test: sales@example.test carol@other.test\nloop1@example.test: loop2@example.test\nloop2@example.test: loop1@example.test\n',
      { local_domains: ['extra.test'] },
    );
  });
  after(() => a.stop());

  test('ping answers authd', async () => {
    const r = await a.client.request('ping');
    assert.equal(r.ok, true);
    assert.match(r.params[0]!, /^authd /);
  });

  test('verify: users (any case), unknown users', async () => {
    assert.equal((await a.client.request('verify', ['alice@example.test'])).ok, true);
    assert.equal((await a.client.request('verify', ['ALICE@Example.TEST'])).ok, true);
    assert.equal((await a.client.request('verify', ['<alice@example.test>'])).ok, true);
    assert.equal((await a.client.request('verify', ['nobody@example.test'])).ok, false);
    assert.equal((await a.client.request('verify', ['alice@nowhere.test'])).ok, false);
    assert.equal((await a.client.request('verify', ['alice'])).ok, false);
  });

  test('auth: right password ok with the canonical name, wrong password and unknown user the same error', async () => {
    const good = await a.client.request('auth', ['Alice@example.test', 'right horse']);
    assert.deepEqual(good, { ok: true, params: ['alice@example.test'] });
    const wrong = await a.client.request('auth', ['alice@example.test', 'right horsE']);
    const unknown = await a.client.request('auth', ['mallory@example.test', 'right horse']);
    assert.deepEqual(wrong, { ok: false, params: ['authentication failed'] });
    assert.deepEqual(unknown, wrong);
    assert.equal((await a.client.request('auth', ['alice@example.test', ''])).ok, false);
    // An alias is not a login.
    assert.equal((await a.client.request('auth', ['sales@example.test', 'right horse'])).ok, false);
  });

  test('mailhost: a user\'s mailbox host from the users file, in `mailhost` and as auth\'s second parameter', async () => {
    assert.deepEqual(await a.client.request('mailhost', ['alice@example.test']), { ok: true, params: [] });
    const usersFile = path.join(a.dir, 'users');
    const before = readFileSync(usersFile, 'utf8');
    try {
      writeFileSync(usersFile, before.replace(/^(alice@example\.test:.*)$/m, '$1mailhost=socket://10.0.0.4:14103'));
      await waitFor(async () => (await a.client.request('mailhost', ['Alice@example.test'])).params[0] === 'socket://10.0.0.4:14103' || null);
      assert.deepEqual(await a.client.request('auth', ['alice@example.test', 'right horse']), { ok: true, params: ['alice@example.test', 'socket://10.0.0.4:14103'] });
      const unknown = await a.client.request('mailhost', ['mallory@example.test']);
      assert.equal(unknown.ok, false);
      assert.match(unknown.params[0]!, /^5\.1\.1 /);
    } finally {
      writeFileSync(usersFile, before);
    }
  });

  test('a password with ; % spaces and Unicode, sent percent-encoded on the wire', async () => {
    assert.equal((await a.client.request('auth', ['bob@example.test', TRICKY])).ok, true);
    assert.equal((await a.client.request('auth', ['bob@example.test', TRICKY.trim()])).ok, false);
    assert.equal((await a.client.request('auth', ['bob@example.test', TRICKY.normalize('NFC')])).ok, false);
    // The encoding really is on the wire (a hand-written client would do the same).
    assert.match(encodeParam(TRICKY), /%3B/);
  });

  test('user names with ../, /, NUL or control characters are refused', async () => {
    for (const bad of ['../alice@example.test', 'a/b@example.test', 'alice\u0000@example.test', 'alice@example.test\u0000', 'al ice@example.test', '..@example.test', 'alice@../example.test', '']) {
      assert.equal((await a.client.request('verify', [bad])).ok, false, `verify ${JSON.stringify(bad)}`);
      assert.equal((await a.client.request('auth', [bad, 'right horse'])).ok, false, `auth ${JSON.stringify(bad)}`);
      assert.equal((await a.client.request('resolve', [bad])).ok, false, `resolve ${JSON.stringify(bad)}`);
    }
  });

  test('aliases: verify ok, resolve to users (nested, deduplicated), loops end', async () => {
    assert.equal((await a.client.request('verify', ['sales@example.test'])).ok, true);
    assert.deepEqual((await a.client.request('resolve', ['Sales@example.test'])).params.sort(), ['alice@example.test', 'bob@example.test']);
    assert.deepEqual((await a.client.request('resolve', ['team@example.test'])).params.sort(), ['alice@example.test', 'bob@example.test', 'carol@other.test']);
    assert.deepEqual((await a.client.request('resolve', ['alice@example.test'])).params, ['alice@example.test']);
    assert.equal((await a.client.request('verify', ['loop1@example.test'])).ok, false);
    assert.equal((await a.client.request('resolve', ['nobody@example.test'])).ok, false);
  });

  test('postmaster@ and abuse@ of every local domain exist: the first user of the domain', async () => {
    assert.deepEqual((await a.client.request('resolve', ['postmaster@example.test'])).params, ['alice@example.test']);
    assert.deepEqual((await a.client.request('resolve', ['abuse@other.test'])).params, ['carol@other.test']);
    assert.deepEqual((await a.client.request('resolve', ['PostMaster@Example.test'])).params, ['alice@example.test']);
    assert.equal((await a.client.request('verify', ['postmaster@nowhere.test'])).ok, false);
    // A local domain without users has no one to deliver to.
    assert.equal((await a.client.request('verify', ['postmaster@extra.test'])).ok, false);
  });

  test('recipient delimiter: alice+tag@ delivers to alice@', async () => {
    assert.deepEqual((await a.client.request('resolve', ['alice+lists@example.test'])).params, ['alice@example.test']);
    assert.equal((await a.client.request('verify', ['nobody+x@example.test'])).ok, false);
    assert.equal((await a.client.request('auth', ['alice+x@example.test', 'right horse'])).ok, false);
  });

  test('domain: users, aliases and local_domains', async () => {
    for (const d of ['example.test', 'OTHER.test', 'extra.test']) assert.equal((await a.client.request('domain', [d])).ok, true, d);
    for (const d of ['nowhere.test', 'test', '']) assert.equal((await a.client.request('domain', [d])).ok, false, d);
  });

  test('wrong parameter counts are errors, the connection goes on', async () => {
    assert.equal((await a.client.request('auth', ['alice@example.test'])).ok, false);
    assert.equal((await a.client.request('verify', [])).ok, false);
    assert.equal((await a.client.request('verify', ['alice@example.test'])).ok, true);
  });
});

describe('authd files', () => {
  test('Dovecot-written hashes verify (SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, PLAIN)', async () => {
    const a = await startAuthd();
    try {
      copyFileSync(path.join(FIXTURES, 'dovecot-users'), path.join(a.dir, 'users'));
      await waitFor(async () => (await a.client.request('verify', ['sha512@dovecot.test'])).ok);
      for (const u of ['sha512', 'sha256', 'blf', 'argon', 'plain']) {
        assert.equal((await a.client.request('auth', [`${u}@dovecot.test`, 'secret'])).ok, true, u);
        assert.equal((await a.client.request('auth', [`${u}@dovecot.test`, 'Secret'])).ok, false, u);
      }
      assert.equal((await a.client.request('auth', ['tricky@dovecot.test', 'p; 100% sûr ✓ '])).ok, true);
      assert.equal((await a.client.request('auth', ['tricky@dovecot.test', 'p; 100% sûr ✓'])).ok, false);
    } finally {
      await a.stop();
    }
  });

  test('reload on change; malformed lines are skipped, the rest still works', async () => {
    const a = await startAuthd({ 'alice@example.test': 'pw' });
    try {
      assert.equal((await a.client.request('verify', ['dave@example.test'])).ok, false);
      const users = path.join(a.dir, 'users');
      const good = readFileSync(users, 'utf8');
      writeFileSync(users, `${good}this line is broken\n../evil@example.test:{PLAIN}x::::::\ndave@example.test:{PLAIN}d p::::::\n`);
      await waitFor(async () => (await a.client.request('verify', ['dave@example.test'])).ok);
      assert.equal((await a.client.request('auth', ['dave@example.test', 'd p'])).ok, true);
      assert.equal((await a.client.request('auth', ['alice@example.test', 'pw'])).ok, true);
      appendFileSync(path.join(a.dir, 'aliases'), 'help@example.test: dave@example.test\nbroken alias line\n');
      await waitFor(async () => (await a.client.request('verify', ['help@example.test'])).ok);
      writeFileSync(users, good);
      await waitFor(async () => !(await a.client.request('verify', ['dave@example.test'])).ok);
      assert.equal((await a.client.request('verify', ['help@example.test'])).ok, false);
    } finally {
      await a.stop();
    }
  });
  test('reload(config): new settings apply without a restart', async () => {
    const a = await startAuthd({ 'alice@example.test': 'pw', 'bob@example.test': 'pw' });
    try {
      assert.equal((await a.client.request('domain', ['new.test'])).ok, false);
      assert.deepEqual((await a.client.request('resolve', ['postmaster@example.test'])).params, ['alice@example.test']);
      const next = { ...a.config, authd: { ...a.config.authd, local_domains: ['new.test'], postmaster: 'bob@example.test', recipient_delimiter: '' } };
      await a.server.reload!(next);
      assert.equal((await a.client.request('domain', ['new.test'])).ok, true);
      assert.deepEqual((await a.client.request('resolve', ['postmaster@example.test'])).params, ['bob@example.test']);
      assert.equal((await a.client.request('verify', ['alice+x@example.test'])).ok, false);
    } finally {
      await a.stop();
    }
  });
});

describe('authd rate limiting', () => {
  test('per user: too many attempts without checking, then it expires', async () => {
    const a = await startAuthd({ 'alice@example.test': 'pw', 'bob@example.test': 'pw' }, '', { max_failures: 3, failure_window_s: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.deepEqual(await a.client.request('auth', ['alice@example.test', 'bad']), { ok: false, params: ['authentication failed'] });
      // Now even the right password is refused: the password is not checked.
      assert.deepEqual(await a.client.request('auth', ['alice@example.test', 'pw']), { ok: false, params: ['too many attempts'] });
      assert.deepEqual(await a.client.request('auth', ['ALICE@example.test', 'bad']), { ok: false, params: ['too many attempts'] });
      // Other users are not affected.
      assert.equal((await a.client.request('auth', ['bob@example.test', 'pw'])).ok, true);
      // The window passes.
      await waitFor(async () => (await a.client.request('auth', ['alice@example.test', 'pw'])).ok, 15_000, 200);
    } finally {
      await a.stop();
    }
  });

  test('per client address, across user names (unknown ones too)', async () => {
    const a = await startAuthd({ 'alice@example.test': 'pw' }, '', { max_failures: 3, failure_window_s: 1 });
    try {
      for (const u of ['x1@example.test', 'x2@example.test', 'x3@example.test']) {
        assert.equal((await a.client.request('auth', [u, 'guess', '192.0.2.7'])).params[0], 'authentication failed');
      }
      assert.equal((await a.client.request('auth', ['alice@example.test', 'pw', '192.0.2.7'])).params[0], 'too many attempts');
      assert.equal((await a.client.request('auth', ['alice@example.test', 'pw', '::FFFF:192.0.2.7'])).params[0], 'too many attempts');
      assert.equal((await a.client.request('auth', ['alice@example.test', 'pw', '192.0.2.8'])).ok, true);
      await waitFor(async () => (await a.client.request('auth', ['alice@example.test', 'pw', '192.0.2.7'])).ok, 15_000, 200);
    } finally {
      await a.stop();
    }
  });

  test('a pipelined burst of guesses gets at most max_failures checks', async () => {
    const a = await startAuthd({ 'alice@example.test': 'pw' }, '', { max_failures: 3, failure_window_s: 60 });
    try {
      const guesses = Array.from({ length: 40 }, (_, i) => (i === 39 ? 'pw' : `guess${i}`));
      const replies = await Promise.all(guesses.map((g) => a.client.request('auth', ['alice@example.test', g])));
      assert.equal(replies.filter((r) => r.params[0] === 'authentication failed').length, 3);
      assert.equal(replies.filter((r) => r.params[0] === 'too many attempts').length, 37);
      assert.equal(replies.some((r) => r.ok), false);
    } finally {
      await a.stop();
    }
  });
});
