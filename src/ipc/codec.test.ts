import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import { CodecError, decodeParam, encodeParam, formatMessage, parseMessage } from './codec.js';

test('formats the seed examples byte for byte', () => {
  assert.equal(formatMessage('slot', ['incoming']), 'slot: incoming\r\n');
  assert.equal(formatMessage('push', ['incoming', '/tmp/fmain/queues/incoming/1']), 'push: incoming ; /tmp/fmain/queues/incoming/1\r\n');
  assert.equal(formatMessage('ok'), 'ok\r\n');
  assert.equal(formatMessage('mailinfo', ['1', '120']), 'mailinfo: 1 ; 120\r\n');
});

test('parses names, parameters and trims spaces around them', () => {
  assert.deepEqual(parseMessage('ping'), { name: 'ping', params: [] });
  assert.deepEqual(parseMessage('auth:alice;  secret  '), { name: 'auth', params: ['alice', 'secret'] });
  assert.deepEqual(parseMessage('list: user_john\r\n'), { name: 'list', params: ['user_john'] });
  assert.deepEqual(parseMessage('ok: '), { name: 'ok', params: [''] });
  assert.deepEqual(parseMessage('PING'), { name: 'ping', params: [] });
});

test('rejects empty and malformed names', () => {
  assert.throws(() => parseMessage(''), CodecError);
  assert.throws(() => parseMessage('   '), CodecError);
  assert.throws(() => parseMessage('9lives: x'), CodecError);
  assert.throws(() => parseMessage('a b: x'), CodecError);
  assert.throws(() => parseMessage('\x00\xff garbage'), CodecError);
});

test('percent-encodes exactly the reserved characters', () => {
  assert.equal(encodeParam('a;b%c'), 'a%3Bb%25c');
  assert.equal(encodeParam('line\r\nnext'), 'line%0D%0Anext');
  assert.equal(encodeParam(' pad '), '%20pad%20');
  assert.equal(encodeParam('in side'), 'in side');
  assert.equal(encodeParam('   '), '%20%20%20');
  assert.equal(decodeParam('100%'), '100%');
  assert.equal(decodeParam('%zz'), '%zz');
  assert.equal(decodeParam('%C3%A9'), 'é');
});

test('property: any parameter list survives format -> parse unchanged', () => {
  const tricky = fc.constantFrom(';', '%', '\r', '\n', ' ', '\t', '%3B', ':', 'é', '😀', '\u00a0', '\u2028');
  const param = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.array(fc.oneof(tricky, fc.string({ unit: 'binary', maxLength: 3 })), { maxLength: 12 }).map((a) => a.join('')),
  );
  fc.assert(
    fc.property(fc.array(param, { maxLength: 6 }), (params) => {
      const line = formatMessage('msg', params);
      assert.ok(line.endsWith('\r\n'));
      assert.equal(line.indexOf('\n'), line.length - 1, 'one line only');
      assert.deepEqual(parseMessage(line).params, params);
    }),
    { numRuns: 2000 },
  );
});
