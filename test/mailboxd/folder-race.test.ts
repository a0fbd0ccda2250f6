// Folder's index while stores are between "renamed into new/" and "numbered": a reconcile in
// that window must neither drop nor double-number them (found as a flaky `concurrent stores and
// lists`: 80 stores acknowledged, 74 listed), and deferred numbering must give every
// acknowledged store its UID, on disk before anyone sees it.

import assert from 'node:assert/strict';
import { promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { Folder } from '../../src/mailboxd/folder.js';
import { type DirCommit, DirSyncer } from '../../src/shared/durable.js';
import type { CommitStep } from '../../src/shared/io-pool.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

/** A DirSyncer whose folder commits (done on disk) are reported only when the test says so. */
class HeldSyncer extends DirSyncer {
  private readonly held: Array<() => void> = [];
  override sync(dir: string, step?: CommitStep): Promise<DirCommit> {
    return super.sync(dir, step).then((c) => new Promise<DirCommit>((resolve) => this.held.push(() => resolve(c))));
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

const uidlistText = (maildir: string): string => readFileSync(path.join(maildir, 'dovecot-uidlist'), 'utf8');

describe('Folder: stores in flight and deferred numbering', () => {
  const tmp = tempDir('fmail-folder-race-');
  after(() => tmp.cleanup());

  for (const [label, body] of [
    ['small', Buffer.from('Subject: ours\r\n\r\nhello\r\n')],
    ['big', Buffer.from(`Subject: ours\r\n\r\n${'x'.repeat(78)}\r\n`.repeat(1000))],
  ] as const) {
    test(`a ${label} store in flight survives a reconcile and is numbered after the file another MDA added meanwhile`, async () => {
      const syncer = new HeldSyncer();
      const maildir = path.join(tmp.dir, `race-${label}`);
      const folder = new Folder('INBOX', maildir, 'test.host', syncer, () => undefined);
      await folder.ready();
      const delivered = folder.deliver(once(body), body.length);
      // Renamed into new/ and fsynced, not yet reported to the store.
      await waitFor(() => syncer.waiting === 1, 10_000);
      // Another MDA drops a file into new/: the stat check sees new/ changed and reconciles.
      writeFileSync(path.join(maildir, 'new', '1700000000.M1P1.other.host,S=5'), 'hello');
      await folder.sync();
      const listed = (): string[] => folder.messages().map((m) => m.name);
      assert.deepEqual(listed(), ['1700000000.M1P1.other.host,S=5'], 'ours is left to its own numbering');
      syncer.releaseAll();
      const m = await delivered;
      await folder.sync();
      assert.deepEqual(
        folder.messages().map((x) => x.uid),
        [1, 2],
      );
      assert.equal(m.uid, 2);
      assert.ok(listed().includes(m.name), listed().join(' '));
      assert.match(uidlistText(maildir), new RegExp(`^2 :${m.key.replace(/[.]/g, '\\.')}$`, 'm'));
    });
  }

  test('an acknowledged store is numbered as soon as a reader asks, or by itself shortly after, its line on disk first', async () => {
    const maildir = path.join(tmp.dir, 'deferred');
    const folder = new Folder('INBOX', maildir, 'test.host', new DirSyncer(), () => undefined);
    await folder.ready();
    const a = await folder.deliver(once(Buffer.from('Subject: a\r\n\r\na\r\n')), 17);
    // A reader: ready() numbers what was acknowledged before it answers.
    await folder.ready();
    assert.deepEqual(
      folder.messages().map((m) => m.key),
      [a.key],
    );
    assert.ok(uidlistText(maildir).includes(`1 :${a.key}\n`));
    // No reader: the delay numbers it.
    const b = await folder.deliver(once(Buffer.from('Subject: b\r\n\r\nb\r\n')), 17);
    await waitFor(() => uidlistText(maildir).includes(`2 :${b.key}\n`), 10_000);
    assert.equal(b.uid, 2);
  });

  test('our own stores, small and big, are not taken for a change behind our back (no reconcile)', async () => {
    const maildir = path.join(tmp.dir, 'own');
    const folder = new Folder('INBOX', maildir, 'test.host', new DirSyncer(), () => undefined);
    await folder.ready();
    const small = Buffer.from('Subject: s\r\n\r\ns\r\n');
    const big = Buffer.from(`Subject: b\r\n\r\n${'x'.repeat(78)}\r\n`.repeat(1000));
    await folder.deliver(once(small), small.length);
    await folder.deliver(once(big), big.length);
    await folder.ready();
    // A reconcile reads the folders: the stat check must find only changes it knows.
    const readdir = fsp.readdir;
    let reads = 0;
    fsp.readdir = ((...args: Parameters<typeof readdir>) => {
      reads++;
      return readdir(...args);
    }) as typeof readdir;
    try {
      await folder.sync();
    } finally {
      fsp.readdir = readdir;
    }
    assert.equal(reads, 0);
    assert.equal(folder.messages().length, 2);
  });

  test('a deferred numbering that fails is told (once a minute at most) and retried', async () => {
    const maildir = path.join(tmp.dir, 'failing');
    const told: Error[] = [];
    const folder = new Folder('INBOX', maildir, 'test.host', new DirSyncer(), () => undefined, (err) => told.push(err));
    await folder.ready();
    await folder.deliver(once(Buffer.from('Subject: a\r\n\r\na\r\n')), 17);
    // The Maildir goes before the numbering runs (an administrator's rm -r): the uidlist cannot be written.
    rmSync(maildir, { recursive: true, force: true });
    await waitFor(() => told.length === 1, 10_000);
    assert.match(String(told[0]), /ENOENT|no such file/i);
  });

  test('a store acknowledged and not yet numbered when its mailboxd stops is numbered by the next one, once', async () => {
    const maildir = path.join(tmp.dir, 'restart');
    const first = new Folder('INBOX', maildir, 'test.host', new DirSyncer(), () => undefined);
    await first.ready();
    const m = await first.deliver(once(Buffer.from('Subject: a\r\n\r\na\r\n')), 17);
    // As after a crash: a second index of the same Maildir loads it before the first numbers.
    const second = new Folder('INBOX', maildir, 'test.host', new DirSyncer(), () => undefined);
    await second.ready();
    assert.deepEqual(
      second.messages().map((x) => [x.uid, x.key]),
      [[1, m.key]],
    );
    // The first one's numbering then finds that line and takes its UID: one line, one UID.
    await first.ready();
    assert.equal(m.uid, 1);
    const lines = uidlistText(maildir).trim().split('\n').slice(1);
    assert.deepEqual(lines, [`1 :${m.key}`]);
  });
});
