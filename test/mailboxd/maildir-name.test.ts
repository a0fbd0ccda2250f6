// Maildir names: what we write and what we accept from Dovecot, Postfix and qmail.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { compareArrival, maildirHost, newBaseName, parseName } from '../../src/mailboxd/maildir-name.js';

test('parseName reads Dovecot, Postfix and qmail names', () => {
  const pick = (dir: 'new' | 'cur', n: string): unknown => {
    const e = parseName(dir, n)!;
    return [e.uid, e.rel, e.size, e.secs, e.usecs, e.seq];
  };
  assert.deepEqual(pick('new', '1795616001.M272392P16620.vm,S=49,W=53'), ['1795616001.M272392P16620.vm', 'new/1795616001.M272392P16620.vm,S=49,W=53', 49, 1795616001, 272392, 0]);
  assert.deepEqual(pick('cur', '1795616001.M350147P16623.vm,S=49,W=53:2,S'), ['1795616001.M350147P16623.vm', 'cur/1795616001.M350147P16623.vm,S=49,W=53:2,S', 49, 1795616001, 350147, 0]);
  assert.deepEqual(pick('cur', '1700000000.M5P9Q12.host,W=7,S=6:2,RS'), ['1700000000.M5P9Q12.host', 'cur/1700000000.M5P9Q12.host,W=7,S=6:2,RS', 6, 1700000000, 5, 12]);
  // qmail / Postfix style without a size: needs a stat.
  assert.deepEqual(pick('new', '1000000000.P123Q1.oldhost'), ['1000000000.P123Q1.oldhost', 'new/1000000000.P123Q1.oldhost', -1, 1000000000, 0, 1]);
  assert.deepEqual(pick('new', '1000000000.V801I1bM5.host'), ['1000000000.V801I1bM5.host', 'new/1000000000.V801I1bM5.host', -1, 1000000000, 5, 0]);
  // A bogus S= is ignored rather than trusted.
  assert.equal(parseName('new', '1.M1P1.h,S=12x')!.size, -1);
  assert.equal(parseName('new', '.hidden'), null);
  assert.equal(parseName('new', 'garbage')!.secs, Number.MAX_SAFE_INTEGER);
});

test('newBaseName is unique, Dovecot-shaped and sorts in creation order', () => {
  const host = maildirHost('mx/a:b,c');
  assert.equal(host, 'mx\\057a\\072b\\054c');
  const names = Array.from({ length: 2000 }, () => newBaseName('h'));
  assert.equal(new Set(names).size, names.length);
  for (const n of names) assert.match(n, /^\d+\.M\d+P\d+Q\d+\.h$/);
  const parsed = names.map((n) => parseName('new', `${n},S=1`)!);
  const sorted = [...parsed].sort(compareArrival);
  assert.deepEqual(sorted.map((e) => e.uid), names);
  // Microseconds compare as numbers: M9 is before M10.
  assert.ok(compareArrival(parseName('new', '5.M9P1.h')!, parseName('new', '5.M10P1.h')!) < 0);
});
