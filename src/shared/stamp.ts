// Stamps: short strings that change when a file or folder changes behind our back, compared
// with the ones taken after our own changes. One format for every reader (mailboxd's async
// checks and the I/O worker's locked append must agree byte for byte).

import type { BigIntStats } from 'node:fs';

/** fileStamp - a file's inode, size and mtime (ns); 'none' when it does not exist. */
export function fileStamp(st: BigIntStats | null): string {
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}` : 'none';
}

/** dirStamp - a folder's inode and mtime (ns; an entry added or removed changes it); 'none' when missing. */
export function dirStamp(st: BigIntStats | null): string {
  return st ? `${st.ino}:${st.mtimeNs}` : 'none';
}
