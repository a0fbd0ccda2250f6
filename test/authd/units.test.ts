// authd pieces without a server: password schemes, file parsing and editing, the limiter.

import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, test } from 'node:test';

import { deleteAlias, parseAliases, setAlias } from '../../src/authd/aliases-file.js';
import { AttemptLimiter } from '../../src/authd/limiter.js';
import { hashPassword, verifyPassword } from '../../src/authd/password.js';
import { deleteUser, parseUsers, setUser } from '../../src/authd/users-file.js';

describe('password schemes', () => {
  test('argon2id round trip; wrong, empty, unknown schemes and junk are false', async () => {
    const h = await hashPassword('pässword; 1', { memoryKib: 8192, timeCost: 1, parallelism: 1 });
    assert.match(h, /^\{ARGON2ID\}\$argon2id\$v=19\$m=8192,t=1,p=1\$/);
    assert.equal(await verifyPassword(h, 'pässword; 1'), true);
    assert.equal(await verifyPassword(h, 'pässword; 2'), false);
    assert.equal(await verifyPassword('', ''), false);
    assert.equal(await verifyPassword('{MD5-CRYPT}$1$abc$def', 'x'), false);
    assert.equal(await verifyPassword('{ARGON2ID}garbage', 'x'), false);
    assert.equal(await verifyPassword('{SHA512-CRYPT}$6$garbage', 'x'), false);
    assert.equal(await verifyPassword('{BLF-CRYPT}$2y$05$short', 'x'), false);
    assert.equal(await verifyPassword('plainpassword', 'plainpassword'), false, 'an unmarked value is CRYPT, never plain text');
  });

  test('SHA512-CRYPT runs off the event loop', async () => {
    const stored = '{SHA512-CRYPT}$6$rounds=200000$abcdefgh$' + 'x'.repeat(86);
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const results = await Promise.all(Array.from({ length: 4 }, () => verifyPassword(stored, 'x')));
    h.disable();
    assert.deepEqual(results, [false, false, false, false]);
    // 4 x 200,000 rounds is seconds of CPU; on the main thread one stall would be that long.
    assert.ok(h.max / 1e6 < 1500, `event loop stalled ${h.max / 1e6} ms`);
  });
});

describe('users file', () => {
  const text = [
    '# users',
    'Alice@Example.test:{PLAIN}a:1000:1000::/home/a::',
    'bad line without colon',
    'bob@example.test:{PLAIN}b::::::',
    'alice@example.test:{PLAIN}dup::::::',
    'noat:{PLAIN}x::::::',
    '',
  ].join('\n');

  test('parse: canonical names, problems with line numbers, first duplicate wins', () => {
    const { users, problems } = parseUsers(text);
    assert.deepEqual(
      users.map((u) => [u.user, u.password, u.line]),
      [
        ['alice@example.test', '{PLAIN}a', 2],
        ['bob@example.test', '{PLAIN}b', 4],
      ],
    );
    assert.deepEqual(
      problems.map((p) => p.line),
      [3, 5, 6],
    );
  });

  test('mailhost= extra field: parsed (colons in the address), a bad one skips the line', () => {
    const { users, problems } = parseUsers(
      ['a@example.test:{X}a::::::mailhost=socket://10.0.0.4:14103 quota_rule=*:storage=1G', 'b@example.test:{X}b::::::', 'c@example.test:{X}c::::::mailhost=nonsense'].join('\n'),
    );
    assert.deepEqual(
      users.map((u) => [u.user, u.mailhost]),
      [
        ['a@example.test', 'socket://10.0.0.4:14103'],
        ['b@example.test', ''],
      ],
    );
    assert.deepEqual(
      problems.map((p) => p.line),
      [3],
    );
  });

  test('set and delete keep every other line', () => {
    const changed = setUser(text, 'alice@example.test', '{PLAIN}new');
    // The fields after the password stay (uid, gid, home; extra fields such as mailhost=).
    assert.equal(changed.split('\n')[1], 'alice@example.test:{PLAIN}new:1000:1000::/home/a::');
    const withHost = setUser('dan@example.test:{X}old::::::mailhost=socket://10.0.0.4:14103\n', 'dan@example.test', '{X}new');
    assert.equal(withHost, 'dan@example.test:{X}new::::::mailhost=socket://10.0.0.4:14103\n');
    assert.equal(setUser('eve@example.test:{X}old\n', 'eve@example.test', '{X}new'), 'eve@example.test:{X}new::::::\n');
    assert.equal(changed.split('\n')[2], 'bad line without colon');
    const added = setUser('', 'carol@example.test', '{X}y');
    assert.equal(added, 'carol@example.test:{X}y::::::\n');
    const del = deleteUser(text, 'bob@example.test')!;
    assert.equal(del.includes('bob@'), false);
    assert.equal(del.includes('# users'), true);
    assert.equal(deleteUser(text, 'nobody@example.test'), null);
  });
});

describe('aliases file', () => {
  test('parse, set, delete', () => {
    const text = 'a@x.test: b@x.test, C@X.test  d@x.test\nbroken\nnot an address: b@x.test\ne@x.test:\n';
    const { aliases, problems } = parseAliases(text);
    assert.deepEqual(aliases, [{ alias: 'a@x.test', targets: ['b@x.test', 'c@x.test', 'd@x.test'], line: 1 }]);
    assert.deepEqual(
      problems.map((p) => p.line),
      [2, 3, 4],
    );
    assert.equal(setAlias(text, 'a@x.test', ['z@x.test']).split('\n')[0], 'a@x.test: z@x.test');
    assert.equal(deleteAlias(text, 'a@x.test')!.startsWith('broken'), true);
  });
});

describe('attempt limiter', () => {
  test('counts failures per key, refuses past max, forgets after the window', async () => {
    let now = 1000;
    const l = new AttemptLimiter(2, 10_000, () => now);
    try {
      for (let i = 0; i < 2; i++) {
        assert.equal(await l.acquire(['u:a', 'ip:1']), true);
        l.release(['u:a', 'ip:1'], true);
      }
      assert.equal(await l.acquire(['u:a']), false);
      assert.equal(await l.acquire(['u:b', 'ip:1']), false, 'same address');
      assert.equal(await l.acquire(['u:b', 'ip:2']), true);
      l.release(['u:b', 'ip:2'], false);
      now += 10_001;
      assert.equal(await l.acquire(['u:a']), true);
      l.release(['u:a'], false);
    } finally {
      l.close();
    }
  });

  test('in-flight attempts count: the third waits until one ends', async () => {
    const l = new AttemptLimiter(2, 10_000);
    try {
      assert.equal(await l.acquire(['k']), true);
      assert.equal(await l.acquire(['k']), true);
      let third: boolean | null = null;
      const p = l.acquire(['k']).then((v) => (third = v));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(third, null, 'waits');
      l.release(['k'], false); // a success frees a place
      await p;
      assert.equal(third, true);
      l.release(['k'], true);
      l.release(['k'], true);
      assert.equal(await l.acquire(['k']), false);
    } finally {
      l.close();
    }
  });
});
