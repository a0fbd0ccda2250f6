// Dovecot as the reference: fixtures/dovecot-scenario.txt (login, list, select, fetch, store,
// copy, move, expunge, search, idle on two connections) is replayed over raw sockets against
// a private Dovecot 2.3 and against FancyMail's imapd on the real authd and mailboxd, and every
// step's responses must match once what RFC 9051 leaves to the server is normalised away
// (scenario-normalise.ts). Both start with empty mailboxes; the scenario APPENDs the same
// messages to both, and delivers one through each server's own delivery path while idling.

import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { type DovecotImap, dovecotSkip, startDovecotImap } from '../helpers/dovecot.js';
import { type StepResult, loadScenario, replay } from './scenario.js';
import { ALICE, ALICE_PW, type Stack, startStack } from './stack.js';

const FILE = path.resolve(fileURLToPath(import.meta.url), '../../../../test/imapd/fixtures/dovecot-scenario.txt');

/** differences - the steps whose canonical responses differ, as a readable report. */
function differences(ours: StepResult[], theirs: StepResult[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < Math.max(ours.length, theirs.length); i++) {
    const a = ours[i];
    const b = theirs[i];
    if (a && b && a.line === b.line && JSON.stringify(a.canonical) === JSON.stringify(b.canonical)) continue;
    const s = a ?? b!;
    out.push(
      [
        `line ${s.line}: ${s.what}`,
        ...(a?.canonical ?? ['(no step)']).map((l) => `  fancymail: ${l.slice(0, 400)}`),
        ...(b?.canonical ?? ['(no step)']).map((l) => `  dovecot:   ${l.slice(0, 400)}`),
        ...(a?.raw ?? []).map((l) => `  fancymail raw: ${JSON.stringify(l).slice(0, 400)}`),
        ...(b?.raw ?? []).map((l) => `  dovecot raw:   ${JSON.stringify(l).slice(0, 400)}`),
      ].join('\n'),
    );
  }
  return out;
}

describe('imapd beside Dovecot: one scenario, the same responses', { skip: dovecotSkip() }, () => {
  let fm: Stack;
  let dc: DovecotImap;
  const account = { user: ALICE, pass: ALICE_PW };
  before(async () => {
    fm = await startStack();
    dc = await startDovecotImap({ [ALICE]: ALICE_PW });
  });
  after(async () => {
    dc?.stop();
    await fm?.close();
  });

  test('every step of the scenario answers the same as Dovecot', async () => {
    const sc = loadScenario(FILE);
    assert.ok(sc.steps.length > 200, `${sc.steps.length} steps`);
    const t0 = Date.now();
    const theirs = await replay(sc, { port: dc.port, deliver: (u, b) => dc.deliver(u, b) }, account).catch((err: Error) => {
      throw new Error(`Dovecot: ${err.message}\n${dc.log().slice(-2000)}`);
    });
    const t1 = Date.now();
    const ours = await replay(sc, { port: fm.port, deliver: (u, b) => fm.deliver(u, b) }, account);
    const t2 = Date.now();
    const idle = (r: StepResult[]): number => r.find((s) => s.what.includes('wait EXISTS'))!.ms;
    console.log(`${sc.steps.length} steps: Dovecot ${t1 - t0} ms, FancyMail ${t2 - t1} ms; a delivery reached IDLE in ${idle(theirs)} / ${idle(ours)} ms`);
    const diff = differences(ours, theirs);
    assert.equal(diff.length, 0, `${diff.length} steps differ from Dovecot:\n${diff.join('\n')}`);
  });
});
