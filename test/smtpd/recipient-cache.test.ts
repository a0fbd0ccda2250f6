// smtpd's recipient_cache_ms (an AnswerCache on authd): a local mailbox authd confirmed is
// trusted for that long; unknown recipients are asked every time, and a removed user is refused
// once the time is up.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { type Harness, USERS, greet, startHarness } from './harness.js';

describe('smtpd recipient cache (recipient_cache_ms = 1500)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ smtpd: { recipient_cache_ms: 1500 } });
  });
  after(async () => {
    delete USERS['carol@example.test'];
    await h.close();
  });

  const rcpt = async (to: string): Promise<string> => {
    const { c } = await greet(h.port('smtp'));
    try {
      assert.equal((await c.cmd('MAIL FROM:<x@example.net>')).code, 250);
      return (await c.cmd(`RCPT TO:<${to}>`)).lines[0]!;
    } finally {
      c.close();
    }
  };

  test('a confirmed mailbox is accepted from the cache, then refused once removed and the time is up', async () => {
    USERS['carol@example.test'] = 'pw';
    assert.match(await rcpt('carol@example.test'), /^250 /);
    delete USERS['carol@example.test'];
    const removedAt = Date.now();
    // Well within 1.5 s of authd's answer: accepted without asking authd.
    assert.match(await rcpt('carol@example.test'), /^250 /);
    let last = '';
    for (let i = 0; i < 100 && !last.startsWith('550 '); i++) {
      last = await rcpt('carol@example.test');
      if (!last.startsWith('550 ')) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(last, '550 5.1.1 <carol@example.test>: Recipient address rejected: User unknown');
    assert.ok(Date.now() - removedAt < 10_000);
  });

  test('an unknown recipient is not remembered: accepted as soon as the user exists', async () => {
    assert.match(await rcpt('dave@example.test'), /^550 5\.1\.1 /);
    USERS['dave@example.test'] = 'pw';
    try {
      assert.match(await rcpt('dave@example.test'), /^250 /);
    } finally {
      delete USERS['dave@example.test'];
    }
  });
});
