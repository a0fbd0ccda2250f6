// smtp-out through a relay host (smart host) that requires AUTH: opportunistic STARTTLS first,
// then AUTH with [smtp_out] relay_user/relay_password; wrong credentials defer, never bounce.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { waitFor } from '../helpers/tmp.js';
import { type Fancy, type Sink, message, startFancy, startSink } from '../router/harness.js';

describe('smtp-out: relay host with AUTH', () => {
  let f: Fancy;
  let sink: Sink;
  before(async () => {
    sink = await startSink({
      disabledCommands: [],
      authOptional: false,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _session, cb) {
        if (auth.username === 'relayuser' && auth.password === 'pa;ss word') cb(null, { user: 'relayuser' });
        else cb(new Error('535 5.7.8 bad credentials'));
      },
    });
    // The sink's certificate is self-signed: encrypted, not verified.
    f = await startFancy({ smtp_out: { relay_host: `127.0.0.1:${sink.port}`, relay_user: 'relayuser', relay_password: 'pa;ss word', relay_tls_verify: false } });
  });
  after(async () => {
    await f.stop();
    await sink.close();
  });

  test('mail for any remote domain goes to the relay, over STARTTLS, authenticated', async () => {
    const qid = await f.inject('alice@example.test', ['someone@anywhere.example', 'other@elsewhere.example'], message('via relay'));
    await waitFor(() => sink.messages.filter((m) => m.data.includes('via relay')).flatMap((m) => m.to).length === 2, 30_000);
    for (const m of sink.messages) {
      assert.equal(m.tls, true, 'STARTTLS used');
      assert.equal(m.user, 'relayuser');
    }
    await f.waitLog((l) => l.event === 'smtp-out.sent' && l.qid === qid && l.rcpt === 'other@elsewhere.example');
  });

  test('wrong relay credentials: deferred (an administrator can fix them), not bounced', async () => {
    const cfg = structuredClone(f.config);
    cfg.smtp_out.relay_password = 'wrong';
    await f.system.reload(cfg);
    const qid = await f.inject('alice@example.test', ['z@anywhere.example'], message('bad auth'));
    const line = await f.waitLog((l) => l.event === 'smtp-out.deferred' && l.qid === qid, 30_000);
    assert.match(String(line.reason), /535|auth/i);
    assert.ok(!f.logs.some((l) => l.event === 'smtp-out.bounced' && l.qid === qid));
  });
});
