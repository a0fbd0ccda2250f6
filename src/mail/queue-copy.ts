// QueueFiles - how a consumer of queued reads the message a `pop` (or smtp-out's `send`) named.
// Co-located with queued (the default, `queue_colocated = true` in the server's own section):
// the PATH is a file on this host and is read as it is. Not co-located: the bytes come over IPC
// with `get: QUEUE ; PATH` into a private copy in this server's own data folder (not synced:
// queued holds the durable one), which the existing readers (envelope parser, streams) open as
// they would the queue file; the copy is removed when the message is released. So a host
// without queued's disk never opens a path of queued's, and a co-located one never pays the copy.

import { promises as fsp } from 'node:fs';
import path from 'node:path';

import { type IpcClient } from '../ipc/index.js';

export interface LocalFile {
  /** Where to read the message's bytes on this host. */
  file: string;
  /** Forget the copy (a no-op for queued's own file); never throws. */
  drop(): Promise<void>;
}

const noop = async (): Promise<void> => {};

export class QueueFiles {
  private seq = 0;
  private ready: Promise<void> | null = null;

  /** DIR - this server's copy folder; null when co-located (paths are read in place). */
  constructor(
    private readonly queued: IpcClient,
    private readonly dir: string | null,
  ) {}

  get colocated(): boolean {
    return this.dir === null;
  }

  /**
   * local - a readable file with the bytes of message P of QUEUE. Throws an ENOENT error when
   * queued no longer knows P (5.5.4: done, or not a message), so callers treat it as a vanished file.
   */
  async local(queue: string, p: string): Promise<LocalFile> {
    if (this.dir === null) return { file: p, drop: noop };
    // Copies left by a previous run are stale: the folder is emptied once, on first use.
    this.ready ??= fsp.rm(this.dir, { recursive: true, force: true }).then(() => fsp.mkdir(this.dir!, { recursive: true }).then(() => undefined));
    await this.ready;
    const { reply, data } = await this.queued.requestRaw('get', [queue, p]);
    if (!reply.ok || !data) {
      const reason = reply.params[0] ?? 'refused';
      const err = new Error(`get ${queue} ${path.basename(p)}: ${reason}`) as NodeJS.ErrnoException;
      if (/^5\./.test(reason)) err.code = 'ENOENT';
      throw err;
    }
    const file = path.join(this.dir, `${path.basename(p)}.${++this.seq}`);
    await fsp.writeFile(file, data);
    return { file, drop: () => fsp.rm(file, { force: true }).catch(() => undefined) };
  }
}
