// router: a message whose recipients partly fail temporarily - the delivered ones are not
// delivered again; the rest is requeued and delivered once the failing server is back.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { silentLogger } from '../../src/shared/log.js';
import { waitFor } from '../helpers/tmp.js';
import { type Fancy, type Sink, message, startFancy, startSink } from './harness.js';

describe('router: partial temporary failure', () => {
  let f: Fancy;
  let sink: Sink;
  before(async () => {
    sink = await startSink();
    f = await startFancy({ smtp_out: { routes: { 'remote.test': `127.0.0.1:${sink.port}` } } });
  });
  after(async () => {
    await f.stop();
    await sink.close();
  });

  test('local recipient delivered once; remote one requeued while smtp-out is down, then sent', async () => {
    const out = f.system.servers.find((s) => s.name === 'smtp-out')!;
    await out.close();
    const qid = await f.inject('carol@remote.test', ['alice@example.test', 'far@remote.test'], message('half and half'));
    const requeued = await f.waitLog((l) => l.event === 'router.requeued' && l.qid === qid);
    assert.deepEqual(requeued.remaining, ['far@remote.test']);
    await waitFor(() => f.maildir('alice@example.test').some((m) => m.includes('half and half')));
    // the remainder comes round again (at least once) while smtp-out is still down
    await f.waitLog((l) => l.event === 'router.deferred' && l.qid === qid, 20_000);
    const { start } = await import('../../src/smtp-out/index.js');
    f.system.servers.splice(f.system.servers.indexOf(out), 1, await start({ config: f.config, logger: silentLogger() }));
    await waitFor(() => sink.messages.some((m) => m.data.includes('half and half')), 30_000);
    assert.deepEqual(sink.messages.find((m) => m.data.includes('half and half'))!.to, ['far@remote.test']);
    // The outgoing file stays leased until smtp-out's `done`: settled waits for it.
    await f.settled();
    assert.equal(f.maildir('alice@example.test').filter((m) => m.includes('half and half')).length, 1, 'alice not delivered twice');
  });
});

describe('router: local delivery that keeps failing', () => {
  test('mailboxd down past [router] max_age_s: bounced with 5.4.7 to the (remote) sender', async () => {
    const sink = await startSink();
    const f = await startFancy({ router: { max_age_s: 2 }, smtp_out: { routes: { 'remote.test': `127.0.0.1:${sink.port}` } } });
    try {
      await f.system.servers.find((s) => s.name === 'mailboxd')!.close();
      const qid = await f.inject('carol@remote.test', ['alice@example.test'], message('mailbox never back'));
      await f.waitLog((l) => l.event === 'router.deferred' && l.qid === qid);
      const line = await f.waitLog((l) => l.event === 'router.bounced' && l.qid === qid, 20_000);
      assert.equal(line.status, '5.4.7');
      assert.match(String(line.reason), /mailboxd unavailable/);
      const dsn = await waitFor(() => sink.messages.find((m) => m.to.includes('carol@remote.test')), 20_000);
      assert.match(dsn.data.toString(), /Status: 5\.4\.7/);
    } finally {
      await f.stop();
      await sink.close();
    }
  });
});
