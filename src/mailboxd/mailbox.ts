// UserBox - one user's Maildir: INBOX and its Maildir++ folders (`.Name/`), the folder list,
// subscriptions, create/delete/rename, and moving messages between folders (hard links, as
// Dovecot copies, so a copy costs no data; a copy by bytes when links are refused).

import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';

import { writeFileAtomic } from '../shared/durable.js';
import { Folder, type Msg } from './folder.js';
import { folderDirName, folderFromDirName } from './folder-name.js';
import type { DirSyncer } from '../shared/durable.js';

export class FolderError extends Error {}

export class UserBox {
  private readonly folders = new Map<string, Folder>();

  constructor(
    readonly user: string,
    readonly dir: string,
    private readonly host: string,
    private readonly syncer: DirSyncer,
    private readonly onChange: (user: string, folder: Folder) => void,
    private readonly onNumberingFailed: (user: string, folder: Folder, err: Error) => void = () => {},
  ) {}

  /** inbox - INBOX always exists (its folders are made on first use). */
  inbox(): Folder {
    return this.cached('INBOX');
  }

  /** folder - the folder with this (checked) key, or null when it does not exist. */
  async folder(key: string): Promise<Folder | null> {
    if (key === 'INBOX') return this.inbox();
    try {
      const st = await fsp.stat(path.join(this.dir, folderDirName(key)));
      if (!st.isDirectory()) return null;
    } catch {
      this.folders.delete(key);
      return null;
    }
    return this.cached(key);
  }

  /** cachedFolder - the folder if this process has it open (for alerts). */
  cachedFolder(key: string): Folder | undefined {
    return this.folders.get(key);
  }

  /** usage - bytes in INBOX and every folder opened so far (the quota's view). */
  usage(): number {
    let total = 0;
    for (const f of this.folders.values()) total += f.usage();
    return total;
  }

  private cached(key: string): Folder {
    let f = this.folders.get(key);
    if (!f) {
      f = new Folder(
        key,
        path.join(this.dir, folderDirName(key)),
        this.host,
        this.syncer,
        (folder) => this.onChange(this.user, folder),
        (err) => this.onNumberingFailed(this.user, f!, err),
      );
      this.folders.set(key, f);
    }
    return f;
  }

  /** names - every folder, INBOX first, the others sorted. */
  async names(): Promise<string[]> {
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(this.dir);
    } catch {
      // no Maildir yet: only INBOX
    }
    const out: string[] = [];
    for (const e of entries) {
      const name = folderFromDirName(e);
      if (name === null) continue;
      try {
        if ((await fsp.stat(path.join(this.dir, e))).isDirectory()) out.push(name);
      } catch {
        // removed meanwhile
      }
    }
    return ['INBOX', ...out.sort()];
  }

  /** create - a new empty folder; its UIDVALIDITY. */
  async create(key: string): Promise<number> {
    if (key === 'INBOX') throw new FolderError('folder exists');
    await this.inbox().ready();
    const dir = path.join(this.dir, folderDirName(key));
    try {
      await fsp.mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new FolderError('folder exists');
      throw err;
    }
    for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(path.join(dir, sub), { mode: 0o700 });
    await fsp.writeFile(path.join(dir, 'maildirfolder'), '', { mode: 0o600 });
    this.folders.delete(key);
    const f = this.cached(key);
    await f.ready();
    return f.uidvalidity;
  }

  /** remove - delete a folder and its messages (its children stay, as in Dovecot). */
  async remove(key: string): Promise<void> {
    if (key === 'INBOX') throw new FolderError('cannot delete INBOX');
    const dir = path.join(this.dir, folderDirName(key));
    // Renamed first to a name no listing shows (`..`), so the folder vanishes at once.
    const trash = path.join(this.dir, `..deleted-${process.pid}-${Date.now()}`);
    try {
      await fsp.rename(dir, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FolderError('no such folder');
      throw err;
    }
    const f = this.folders.get(key);
    this.folders.delete(key);
    await fsp.rm(trash, { recursive: true, force: true });
    if (f) this.onChange(this.user, f);
  }

  /** rename - OLD and its children to NEW (INBOX: its messages move to a new folder NEW). */
  async rename(from: string, to: string): Promise<void> {
    if (to === 'INBOX') throw new FolderError('folder exists');
    if (from === 'INBOX') {
      await this.create(to);
      const inbox = this.inbox();
      await inbox.sync();
      const dest = (await this.folder(to))!;
      await transfer(inbox, [...inbox.messages()], dest, true);
      return;
    }
    const all = await this.names();
    if (!all.includes(from)) throw new FolderError('no such folder');
    const moving = all.filter((n) => n === from || n.startsWith(from + '.'));
    const targets = moving.map((n) => to + n.slice(from.length));
    for (const t of targets) if (all.includes(t)) throw new FolderError('folder exists');
    for (let i = 0; i < moving.length; i++) {
      await fsp.rename(path.join(this.dir, folderDirName(moving[i]!)), path.join(this.dir, folderDirName(targets[i]!)));
      this.folders.delete(moving[i]!);
      this.folders.delete(targets[i]!);
    }
  }

  /** subscriptions - the subscribed names (Dovecot's `subscriptions` file, one per line). */
  async subscriptions(): Promise<string[]> {
    try {
      const text = await fsp.readFile(path.join(this.dir, 'subscriptions'), 'utf8');
      return text.split('\n').filter((l) => l !== '' && !/^V\t/.test(l));
    } catch {
      return [];
    }
  }

  async subscribe(key: string, on: boolean): Promise<void> {
    await this.inbox().ready();
    const subs = (await this.subscriptions()).filter((s) => s !== key);
    if (on) subs.push(key);
    await writeFileAtomic(path.join(this.dir, 'subscriptions'), subs.map((s) => s + '\n').join(''));
  }
}

/**
 * transfer - copy (or move) messages into DEST, flags kept; resolves with source and new UIDs
 * pairwise once the copies are durable (and, for a move, the sources removed).
 */
export async function transfer(src: Folder, msgs: Msg[], dest: Folder, move: boolean): Promise<{ from: number[]; to: number[] }> {
  await dest.ready();
  const files: Array<{ sub: 'new' | 'cur'; name: string; size: number; mtime: number }> = [];
  const done: Msg[] = [];
  for (const m of msgs) {
    if (m.gone) continue;
    let letters = '';
    for (const l of m.letters) {
      if (l >= 'a' && l <= 'z') {
        const kw = src.keywords.nameOf(l);
        if (kw) letters += await dest.keywords.letterFor(kw, true);
      } else letters += l;
    }
    letters = [...new Set(letters)].sort().join('');
    const target = dest.newFileName(m.size, letters);
    const to = path.join(dest.dir, target.sub, target.name);
    const mtime = src.internalDate(m);
    if (!(await linkOrCopy(src, m, dest, to, mtime))) continue;
    files.push({ ...target, size: m.size, mtime });
    done.push(m);
  }
  const added = await dest.adopt(files);
  if (move) await Promise.all(done.map((m) => src.remove(m)));
  return { from: done.map((m) => m.uid), to: added.map((m) => m.uid) };
}

/** linkOrCopy - put the message's file at `to`; false when the source is gone. */
async function linkOrCopy(src: Folder, m: Msg, dest: Folder, to: string, mtime: number): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fsp.link(src.pathOf(m), to);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await src.resync();
        if (m.gone) return false;
        continue;
      }
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      const tmp = path.join(dest.dir, 'tmp', path.basename(to) + '.copy');
      await fsp.copyFile(src.pathOf(m), tmp, constants.COPYFILE_EXCL);
      const fh = await fsp.open(tmp, 'r+');
      await fh.sync().finally(() => fh.close());
      await fsp.utimes(tmp, mtime, mtime);
      await fsp.rename(tmp, to);
      return true;
    }
  }
  return false;
}
