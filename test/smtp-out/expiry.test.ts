// Give-up rules: a destination answering 4xx past [smtp_out] max_age_s bounces with 5.4.7;
// a local mailbox over quota bounces at once with 5.2.2 (the DSN itself goes out by SMTP).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { simpleParser } from 'mailparser';

import { waitFor } from '../helpers/tmp.js';
import { testClient } from '../helpers/config.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

describe('smtp-out: expiry and quota bounces', () => {
  let f: Fancy;
  let sink: Sink;
  before(async () => {
    sink = await startSink();
    f = await startFancy({
      smtp_out: { routes: { 'remote.test': `127.0.0.1:${sink.port}`, 'slow.test': `127.0.0.1:${sink.port}` }, max_age_s: 3 },
      mailboxd: { quota_bytes: 2000 },
    } as Parameters<typeof startFancy>[0]);
    sink.onRcpt = (a) => (a.endsWith('@slow.test') ? [451, '4.7.1 greylisted, come back later'] : null);
  });
  after(async () => {
    await f.stop();
    await sink.close();
  });

  test('4xx until max_age_s: deferred (reason listed by queued), then bounced with 5.4.7', async () => {
    const qid = await f.inject('bob@example.test', ['grey@slow.test'], message('never accepted'));
    await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === qid);
    const admin = testClient(f.config, f.config.ipc.queued);
    try {
      // The defer reaches queued just after smtp-out logs it: poll briefly.
      let items: unknown[] = [];
      const row = await waitFor(async () => {
        const list = await admin.requestList('qlist', ['outgoing']);
        items = list.items;
        return list.items.find((m) => m.params.some((p) => p.includes('greylisted')));
      }, 2_500, 50).catch(() => undefined);
      assert.ok(row, `qlist shows the last remote answer: ${JSON.stringify(items)}`);
    } finally {
      admin.close();
    }
    const dsn = await waitFor(() => f.maildir('bob@example.test').find((m) => m.includes('never accepted')), 30_000);
    const text = (await simpleParser(dsn)).text ?? '';
    assert.match(text, /Status: 5\.4\.7/);
    assert.match(text, /greylisted, come back later/);
  });

  test('over quota: bounced with 5.2.2 to a remote sender, through smtp-out', async () => {
    const big = message('too big for the quota', 'x'.repeat(3000) + '\r\n');
    const qid = await f.inject('carol@remote.test', ['alice@example.test'], big);
    await waitFor(() => sink.messages.find((m) => m.to.includes('carol@remote.test')), 30_000);
    const got = sink.messages.find((m) => m.to.includes('carol@remote.test'))!;
    assert.equal(got.from, '', 'bounces are sent from <>');
    const text = (await simpleParser(got.data)).text ?? '';
    assert.match(text, /Status: 5\.2\.2/);
    assert.equal(f.maildir('alice@example.test').length, 0);
    await f.waitLog((l) => l.event === 'router.bounced' && l.qid === qid);
  });
});
