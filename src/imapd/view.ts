// MailboxView - a session's picture of its selected mailbox: messages in sequence order, and
// the "change catch-up" that brings it up to date with the store.
//
// Message numbers are the session's own: they change only when this session reports EXPUNGE.
// When the store says the folder changed (a delivery, another session's STORE or EXPUNGE),
// catchUp() asks for what changed since the view's HIGHESTMODSEQ and turns it into untagged
// responses: EXPUNGE (only where the client allows it: not during FETCH, STORE or SEARCH by
// number, RFC 9051 §7.5.1), EXISTS for new mail, FETCH FLAGS for flag changes. Expunges held
// back wait for the next command that allows them.

import { flagList } from './encode.js';
import { formatSet } from './sequence.js';
import type { FolderChanges, FolderState, MessageMeta } from './store.js';

const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

/**
 * "Recent claims" (RFC 3501 \Recent): per user and folder, the highest UID some session of
 * this process has already been told about. A message above it is \Recent for the first
 * session that selects (or, read-only, sees) it; SELECT and new mail claim, EXAMINE does not.
 * Kept in memory only: after a restart every message counts as recent once more.
 */
const claimed = new Map<string, number>();

/** recentCount - STATUS RECENT, estimated from UIDNEXT without listing the folder. */
export function recentCount(key: string, messages: number, uidnext: number): number {
  return Math.max(0, Math.min(messages, uidnext - 1 - (claimed.get(key) ?? 0)));
}

export class MailboxView {
  messages: MessageMeta[];
  uidvalidity: number;
  uidnext: number;
  highestModseq: number;
  /** Expunged in the store, still numbered here until an EXPUNGE response may be sent. */
  private heldExpunges = new Set<number>();
  /** The store changed since the last catch-up. */
  dirty = false;
  /** UIDs \Recent in this session. */
  readonly recent = new Set<number>();
  /** Keywords announced in FLAGS so far. */
  private readonly keywords = new Set<string>();
  /** QRESYNC is on: expunges are reported as `VANISHED uids`, not `n EXPUNGE` (RFC 7162 §3.2.10). */
  vanished = false;
  /** Responses owed before messages are expunged (CONTEXT=SEARCH REMOVEFROM), numbers still valid. */
  beforeRemove: ((uids: number[]) => string) | null = null;

  constructor(
    readonly name: string,
    readonly readOnly: boolean,
    state: FolderState,
    /** user, folder and UIDVALIDITY (a recreated folder starts again at UID 1), for the recent claims. */
    private readonly key: string,
  ) {
    this.messages = state.messages;
    this.uidvalidity = state.uidvalidity;
    this.uidnext = state.uidnext;
    this.highestModseq = state.highestModseq;
    const upTo = claimed.get(this.key) ?? 0;
    for (const m of this.messages) if (m.uid > upTo) this.recent.add(m.uid);
    if (!readOnly && this.messages.length) claimed.set(this.key, Math.max(upTo, this.maxUid));
    for (const m of this.messages) for (const f of m.flags) if (!f.startsWith('\\')) this.keywords.add(f);
  }

  private claimRecent(uid: number): void {
    const upTo = claimed.get(this.key) ?? 0;
    if (uid <= upTo) return;
    this.recent.add(uid);
    if (!this.readOnly) claimed.set(this.key, uid);
  }

  /** flagsOf - a message's flags as this session shows them (\Recent included). */
  flagsOf(m: MessageMeta): string[] {
    return this.recent.has(m.uid) ? [...m.flags, '\\Recent'] : m.flags;
  }

  /** flagsLine - the FLAGS and PERMANENTFLAGS responses with every keyword known so far. */
  flagsLines(): string {
    const flags = [...SYSTEM_FLAGS, ...this.keywords].join(' ');
    return `* FLAGS (${flags})\r\n* OK [PERMANENTFLAGS (${this.readOnly ? '' : `${flags} \\*`})] Flags permitted\r\n`;
  }

  /** announce - FLAGS again when these flags hold a keyword the client was not told of. */
  announce(flags: readonly string[]): string {
    let fresh = false;
    for (const f of flags) {
      if (!f.startsWith('\\') && !this.keywords.has(f)) {
        this.keywords.add(f);
        fresh = true;
      }
    }
    return fresh ? this.flagsLines() : '';
  }

  get exists(): number {
    return this.messages.length;
  }

  get maxUid(): number {
    return this.messages.length ? this.messages[this.messages.length - 1]!.uid : 0;
  }

  /** seqOf - the message number of a UID, or 0. */
  seqOf(uid: number): number {
    let lo = 0;
    let hi = this.messages.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = this.messages[mid]!.uid;
      if (u < uid) lo = mid + 1;
      else if (u > uid) hi = mid - 1;
      else return mid + 1;
    }
    return 0;
  }

  isExpunged(uid: number): boolean {
    return this.heldExpunges.has(uid);
  }

  /** update - this session's own STORE result: the new flags, no response owed later. */
  update(meta: MessageMeta): void {
    const seq = this.seqOf(meta.uid);
    if (seq) {
      const cur = this.messages[seq - 1]!;
      if (meta.modseq >= cur.modseq) this.messages[seq - 1] = meta;
    }
  }

  /** added - this session's own APPEND/COPY into this mailbox is picked up by catchUp. */

  /**
   * removeUids - take expunged UIDs out, returning the EXPUNGE responses (highest number
   * first, so each number is right when sent).
   */
  removeUids(uids: Iterable<number>): string[] {
    const list = [...uids];
    const before = this.beforeRemove?.(list.filter((u) => this.seqOf(u))) ?? '';
    const seqs: number[] = [];
    for (const uid of list) {
      const s = this.seqOf(uid);
      if (s) seqs.push(s);
      this.heldExpunges.delete(uid);
    }
    seqs.sort((a, b) => b - a);
    const removed: number[] = [];
    for (const s of seqs) {
      removed.push(this.messages[s - 1]!.uid);
      this.recent.delete(this.messages[s - 1]!.uid);
      this.messages.splice(s - 1, 1);
    }
    const lines = this.vanished ? (removed.length ? [`* VANISHED ${formatSet(removed.sort((a, b) => a - b))}\r\n`] : []) : seqs.map((s) => `* ${s} EXPUNGE\r\n`);
    if (before) lines.unshift(before);
    return lines;
  }

  /** apply - what the store reported, as untagged responses (expunges held unless allowed). */
  apply(changes: FolderChanges, allowExpunge: boolean, withModseq: boolean): string[] {
    const out: string[] = [];
    let changed: MessageMeta[];
    let expunged: number[];
    let highest: number;
    if (changes.kind === 'full') {
      const st = changes.state;
      const present = new Set(st.messages.map((m) => m.uid));
      expunged = this.messages.filter((m) => !present.has(m.uid)).map((m) => m.uid);
      const known = new Map(this.messages.map((m) => [m.uid, m]));
      changed = st.messages.filter((m) => {
        const k = known.get(m.uid);
        return !k || k.modseq !== m.modseq || k.flags.join(' ') !== m.flags.join(' ');
      });
      highest = st.highestModseq;
      this.uidnext = Math.max(this.uidnext, st.uidnext);
    } else {
      changed = changes.changed;
      expunged = changes.expunged;
      highest = changes.highestModseq;
      this.uidnext = Math.max(this.uidnext, changes.uidnext);
    }
    for (const uid of expunged) if (this.seqOf(uid)) this.heldExpunges.add(uid);
    if (allowExpunge && this.heldExpunges.size) out.push(...this.removeUids([...this.heldExpunges]));
    const before = this.messages.length;
    const flagChanges: MessageMeta[] = [];
    for (const m of changed.sort((a, b) => a.uid - b.uid)) {
      if (this.heldExpunges.has(m.uid)) continue;
      const seq = this.seqOf(m.uid);
      if (seq) {
        const cur = this.messages[seq - 1]!;
        if (m.modseq > cur.modseq || (changes.kind === 'full' && cur.flags.join(' ') !== m.flags.join(' '))) {
          this.messages[seq - 1] = m;
          flagChanges.push(m);
        }
      } else if (m.uid > this.maxUid) {
        this.messages.push(m);
        this.claimRecent(m.uid);
      }
    }
    const announce = this.announce(changed.flatMap((m) => m.flags));
    if (announce) out.push(announce);
    if (this.messages.length !== before) out.push(`* ${this.messages.length} EXISTS\r\n* ${this.recent.size} RECENT\r\n`);
    for (const m of flagChanges) {
      const seq = this.seqOf(m.uid);
      out.push(`* ${seq} FETCH (UID ${m.uid} FLAGS ${flagList(this.flagsOf(m))}${withModseq ? ` MODSEQ (${m.modseq})` : ''})\r\n`);
    }
    this.highestModseq = Math.max(this.highestModseq, highest);
    for (const m of this.messages) if (m.uid >= this.uidnext) this.uidnext = m.uid + 1;
    return out;
  }
}
