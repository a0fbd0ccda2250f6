// Folder's index against a reconcile that runs while a store is between "numbered" and
// "acknowledged" (its folder fsync still running): the new message must stay in the index.
// Found as a flaky `concurrent stores and lists` (80 stores acknowledged, 74 listed).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { Folder } from '../../src/mailboxd/folder.js';
import { DirSyncer } from '../../src/shared/durable.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

/** A DirSyncer whose folder fsyncs finish only when the test says so. */
class HeldSyncer extends DirSyncer {
  private readonly held: Array<() => void> = [];
  override sync(dir: string): Promise<void> {
    return super.sync(dir).then(() => new Promise<void>((resolve) => this.held.push(resolve)));
  }
  get waiting(): number {
    return this.held.length;
  }
  releaseAll(): void {
    for (const r of this.held.splice(0)) r();
  }
}

async function* once(b: Buffer): AsyncIterable<Buffer> {
  yield b;
}

describe('Folder under a concurrent reconcile', () => {
  const tmp = tempDir('fmail-folder-race-');
  after(() => tmp.cleanup());

  test('a message numbered but not yet acknowledged survives a reconcile; a file added behind our back is adopted', async () => {
    const syncer = new HeldSyncer();
    const folder = new Folder('INBOX', path.join(tmp.dir, 'Maildir'), 'test.host', syncer, () => undefined);
    await folder.ready();
    // Over SMALL_MESSAGE: written first, then numbered while its folder fsync runs (a small
    // one is numbered only after its commit job, so the window does not exist for it).
    const body = Buffer.from(`Subject: ours\r\n\r\n${'x'.repeat(78)}\r\n`.repeat(1000));
    const delivered = folder.deliver(once(body), body.length);
    // Numbered (in the index, uidlist line written) while its new/ fsync is held back.
    await waitFor(() => folder.messages().length === 1 && syncer.waiting === 1, 10_000);
    // Another MDA drops a file into new/: the stat check sees new/ changed and reconciles.
    writeFileSync(path.join(tmp.dir, 'Maildir', 'new', '1700000000.M1P1.other.host,S=5'), 'hello');
    await folder.sync();
    const listed = (): string[] => folder.messages().map((m) => m.name);
    assert.equal(folder.messages().length, 2, `after the reconcile: ${listed().join(' ')}`);
    syncer.releaseAll();
    const m = await delivered;
    assert.equal(m.gone, false);
    await folder.sync();
    assert.deepEqual(
      folder.messages().map((x) => x.uid),
      [1, 2],
    );
    assert.ok(listed().includes(m.name), listed().join(' '));
  });
});
