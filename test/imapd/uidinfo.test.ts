// imapd's fast reading of mailboxd's `uidinfo:` lines (SELECT of a big folder) against the
// general path: the IPC codec's parseMessage, then the fields.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatMessage, parseMessage } from '../../src/ipc/index.js';
import { uidinfoLine } from '../../src/imapd/mailboxd-store.js';

function general(line: string): unknown {
  const [uid, size, flags, modseq, date] = parseMessage(line).params;
  return { uid: Number(uid), size: Number(size), flags: (flags ?? '').split(' ').filter(Boolean), modseq: Number(modseq) || 1, internalDate: Number(date) * 1000 };
}

test('uidinfo lines read fast give what the general parse gives', () => {
  const lines = [
    formatMessage('uidinfo', ['1', '20', '', '5', '1700000000']),
    formatMessage('uidinfo', ['4294967295', '123456789', '\\Seen \\Flagged $Label1', '9007199254740', '0']),
    formatMessage('uidinfo', ['7', '1', 'a;b $x%y', '3', '1700000001']), // percent-encoded: general path
    formatMessage('uidinfo', ['7', '1', '\\Seen', '0', '1700000001']), // MODSEQ 0 shows as 1
    'uidinfo:  8 ;  30 ;  \\Answered  ; 4 ; 1700000002 ',
    'uidinfo: 9 ; 30 ; ; 4', // short: general path
    'uidinfo: x ; 30 ; ; 4 ; 5', // not a number: general path
  ].map((l) => l.replace(/\r\n$/, ''));
  for (const l of lines) assert.deepEqual({ ...uidinfoLine(l), flags: [...uidinfoLine(l).flags] }, general(l), l);
});

test('messages with the same flags share one frozen list', () => {
  const a = uidinfoLine('uidinfo: 1 ; 20 ; \\Seen ; 5 ; 1700000000');
  const b = uidinfoLine('uidinfo: 2 ; 20 ; \\Seen ; 6 ; 1700000000');
  assert.equal(a.flags, b.flags);
  assert.ok(Object.isFrozen(a.flags));
});
