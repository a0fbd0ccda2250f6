// UID sets in IMAP sequence-set syntax (`1:5,7,10:*`), resolved against a folder's highest UID.

export class UidSetError extends Error {}

/** parseUidSet - the ranges [lo, hi] of the set; `*` is `maxUid`. */
export function parseUidSet(text: string, maxUid: number): Array<[number, number]> {
  if (text.length === 0 || text.length > 60_000) throw new UidSetError('bad uid set');
  const out: Array<[number, number]> = [];
  for (const part of text.split(',')) {
    const m = /^(\d{1,10}|\*)(?::(\d{1,10}|\*))?$/.exec(part);
    if (!m) throw new UidSetError('bad uid set');
    const a = m[1] === '*' ? maxUid : Number(m[1]);
    const b = m[2] === undefined ? a : m[2] === '*' ? maxUid : Number(m[2]);
    if (a === 0 || b === 0 || a > 0xffffffff || b > 0xffffffff) throw new UidSetError('bad uid set');
    out.push(a <= b ? [a, b] : [b, a]);
  }
  return out;
}

/** inSet - whether UID lies in one of the ranges. */
export function inSet(ranges: Array<[number, number]>, uid: number): boolean {
  for (const [lo, hi] of ranges) if (uid >= lo && uid <= hi) return true;
  return false;
}

/** formatUids - a compact set (`1:3,7`) of ascending UIDs. */
export function formatUids(uids: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < uids.length; ) {
    let j = i;
    while (j + 1 < uids.length && uids[j + 1] === uids[j]! + 1) j++;
    parts.push(j === i ? String(uids[i]) : `${uids[i]}:${uids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
