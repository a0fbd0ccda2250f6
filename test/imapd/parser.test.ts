// The IMAP command syntax, sequence sets, names and patterns: what the boundary accepts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BadNameError, checkName, fromWire, patternMatcher, toWire } from '../../src/imapd/names.js';
import { Args, ParseError, splitTagAndCommand, tokenize } from '../../src/imapd/parser.js';
import { SeqMatcher, formatSet, parseSequenceSet } from '../../src/imapd/sequence.js';

describe('imapd tokenizer', () => {
  it('reads atoms, quoted strings with escapes, lists and literals', () => {
    const t = tokenize(['a1 LOGIN "al\\"ice" {5}', Buffer.from('p w)d'), ' (x (y) "z")']);
    assert.deepEqual(t[0], { t: 'atom', v: 'a1' });
    assert.deepEqual(t[2], { t: 'string', v: 'al"ice' });
    assert.equal(t[3]!.t, 'string');
    assert.equal((t[3] as { bytes: Buffer }).bytes.toString(), 'p w)d');
    assert.deepEqual(t[4], { t: 'list', v: [{ t: 'atom', v: 'x' }, { t: 'list', v: [{ t: 'atom', v: 'y' }] }, { t: 'string', v: 'z' }] });
  });

  it('keeps a bracketed section with spaces and parentheses in one atom', () => {
    const t = tokenize(['a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> UID)']);
    const list = t[3] as { v: Array<{ v: string }> };
    assert.equal(list.v[0]!.v, 'BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>');
    assert.equal(list.v[1]!.v, 'UID');
  });

  it('refuses malformed input with ParseError', () => {
    for (const bad of ['a (x', 'a x)', 'a "unterminated', 'a "bad \\q escape"', 'a BODY[1', 'a x\x01y']) {
      assert.throws(() => tokenize([bad]), ParseError, bad);
    }
  });

  it('splits tag and command; rejects tags with forbidden characters', () => {
    assert.deepEqual(splitTagAndCommand(tokenize(['A001 noop']))?.name, 'NOOP');
    assert.equal(splitTagAndCommand(tokenize(['+ NOOP'])), null);
    assert.equal(splitTagAndCommand(tokenize(['a* NOOP'])), null);
  });

  it('Args reads typed arguments and checks the count', () => {
    const a = new Args(tokenize(['INBOX (MESSAGES UIDNEXT) 42']));
    assert.equal(a.mailbox(), 'INBOX');
    assert.equal(a.list().length, 2);
    assert.equal(a.number(), 42);
    a.end();
    assert.throws(() => new Args(tokenize(['x y'])).end(), ParseError);
    assert.throws(() => new Args(tokenize(['99999999999999999'])).number(), ParseError);
  });
});

describe('imapd sequence sets', () => {
  it('parses ranges, * and reversed ranges; matches members', () => {
    const m = new SeqMatcher(parseSequenceSet('1:3,7,10:*,5:4'), 12);
    assert.deepEqual([...Array(13).keys()].filter((n) => m.has(n)), [1, 2, 3, 4, 5, 7, 10, 11, 12]);
    assert.equal(new SeqMatcher(parseSequenceSet('*:5'), 3).has(4), true);
  });

  it('refuses malformed sets', () => {
    for (const bad of ['', '0', '1:', ':3', '1,,2', 'a', '1:2:3', '4294967296']) assert.throws(() => parseSequenceSet(bad), ParseError, bad);
  });

  it('formats ascending numbers compactly', () => {
    assert.equal(formatSet([1, 2, 3, 5, 7, 8]), '1:3,5,7:8');
  });
});

describe('imapd mailbox names (isolation)', () => {
  it('refuses every path or namespace trick', () => {
    for (const bad of ['../alice', '~alice', '#shared.x', '#public', '/etc', 'a..b', '.hidden', 'a.', 'x/y', 'a\\b', 'a*', 'a%', 'a\x00b', '']) {
      assert.throws(() => checkName(bad, '.'), BadNameError, bad);
    }
  });

  it('keeps ordinary names; INBOX in any case is INBOX', () => {
    assert.equal(checkName('inbox', '.'), 'INBOX');
    assert.equal(checkName('Archive.2024', '.'), 'Archive.2024');
  });

  it('converts modified UTF-7 both ways and refuses invalid encodings', () => {
    assert.equal(fromWire('Entw&APw-rfe'), 'Entwürfe');
    assert.equal(toWire('Entwürfe'), 'Entw&APw-rfe');
    assert.equal(fromWire('A &- B'), 'A & B');
    assert.throws(() => fromWire('&Jjo!'), BadNameError);
  });

  it('matches LIST patterns: * across levels, % within one', () => {
    const star = patternMatcher('*', '.');
    const pct = patternMatcher('%', '.');
    assert.equal(star('a.b'), true);
    assert.equal(pct('a.b'), false);
    assert.equal(pct('a'), true);
    assert.equal(patternMatcher('inbox', '.')('INBOX'), true);
    assert.equal(patternMatcher('a.%', '.')('a.b'), true);
    assert.equal(patternMatcher('a.%', '.')('axb'), false);
  });
});
