// edit - change the users or aliases file safely while authd may be reading it: a lock file
// against concurrent `fmail` commands, then write-temp + fsync + rename (writeFileAtomic), so a
// reader sees the old file or the new one, never a torn one. Mode and content of lines we do
// not touch (comments, other users) are kept.

import { promises as fsp } from 'node:fs';

import { writeFileAtomic } from '../shared/durable.js';

const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 60_000;

/** editFile - apply EDIT to FILE's text (missing file = ''); EDIT returns the new text or null (no change). */
export async function editFile(file: string, edit: (text: string) => string | null, defaultMode = 0o600): Promise<boolean> {
  const release = await lock(`${file}.lock`);
  try {
    let text = '';
    let mode = defaultMode;
    try {
      text = await fsp.readFile(file, 'utf8');
      mode = (await fsp.stat(file)).mode & 0o777;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const next = edit(text);
    if (next === null || next === text) return false;
    await writeFileAtomic(file, next, mode);
    return true;
  } finally {
    await release();
  }
}

// lock - create LOCKFILE exclusively, waiting (bounded) for another holder; a lock older than
// a minute is left over from a crashed command and is taken over.
async function lock(lockFile: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await fsp.open(lockFile, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => fsp.rm(lockFile, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await fsp.stat(lockFile).catch(() => null);
    if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
      await fsp.rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${lockFile} is held by another command; remove it if no fmail command is running`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
