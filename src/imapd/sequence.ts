// Sequence sets (RFC 9051 §9 sequence-set): "1:3,5,7:*" over message numbers or UIDs.

import { ParseError } from './parser.js';

/** `*` stands for the largest number in use; Infinity until resolved. */
export type Range = [number, number];

const MAX_RANGES = 10_000;

/** parseSequenceSet - the ranges of a set, `*` as Infinity; ParseError when malformed. */
export function parseSequenceSet(s: string): Range[] {
  if (s === '' || s.length > 1_000_000) throw new ParseError('Bad sequence set');
  const items = s.split(',');
  if (items.length > MAX_RANGES) throw new ParseError('Sequence set too long');
  return items.map((item) => {
    const [a, b, extra] = item.split(':');
    if (extra !== undefined) throw new ParseError('Bad sequence set');
    const lo = seqNumber(a!);
    const hi = b === undefined ? lo : seqNumber(b);
    return lo <= hi ? [lo, hi] : [hi, lo];
  });
}

function seqNumber(s: string): number {
  if (s === '*') return Infinity;
  if (!/^[1-9][0-9]{0,9}$/.test(s)) throw new ParseError('Bad sequence set');
  const n = Number(s);
  if (n > 0xffffffff) throw new ParseError('Bad sequence set');
  return n;
}

/** SeqMatcher - membership test for a set once `*` is known, ranges merged and sorted. */
export class SeqMatcher {
  private readonly ranges: Range[];

  constructor(ranges: Range[], star: number) {
    const resolved = ranges
      .map(([a, b]): Range => {
        const lo = a === Infinity ? star : a;
        const hi = b === Infinity ? star : b;
        return lo <= hi ? [lo, hi] : [hi, lo];
      })
      .sort((x, y) => x[0] - y[0]);
    const merged: Range[] = [];
    for (const r of resolved) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    this.ranges = merged;
  }

  has(n: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid]!;
      if (n < r[0]) hi = mid - 1;
      else if (n > r[1]) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /**
   * missing - the numbers of the set up to `max` that are not in `present` (ascending), as a
   * set string: QRESYNC's VANISHED (EARLIER) when the store cannot list expunges (no loop
   * over the numbers themselves, so 1:4294967295 costs no more than the messages present).
   */
  missing(present: readonly number[], max: number): string {
    const out: string[] = [];
    const push = (a: number, b: number): void => void out.push(a === b ? String(a) : `${a}:${b}`);
    for (const [lo, hiRaw] of this.ranges) {
      const hi = Math.min(hiRaw, max);
      if (lo > hi) break;
      let next = lo;
      for (let i = lowerBound(present, lo); i < present.length && present[i]! <= hi; i++) {
        if (present[i]! > next) push(next, present[i]! - 1);
        next = present[i]! + 1;
      }
      if (next <= hi) push(next, hi);
    }
    return out.join(',');
  }

  get min(): number {
    return this.ranges[0]?.[0] ?? Infinity;
  }

  get max(): number {
    return this.ranges[this.ranges.length - 1]?.[1] ?? 0;
  }
}

/** formatSet - ascending numbers as a compact set: 1:3,5,9:10 (COPYUID, ESEARCH). */
export function formatSet(nums: readonly number[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < nums.length) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    out.push(j > i ? `${nums[i]}:${nums[j]}` : String(nums[i]));
    i = j + 1;
  }
  return out.join(',');
}

function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
