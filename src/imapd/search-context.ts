// CONTEXT=SEARCH's UPDATE (RFC 5267 §4): a SEARCH ... RETURN (UPDATE) keeps its result, and
// as the selected mailbox changes the client is told what joined it (ADDTO) and what left it
// (REMOVEFROM), until CANCELUPDATE or the mailbox is closed.
//
// Which messages to look at again is found without any bookkeeping in the view: the view
// replaces a message's metadata object whenever its flags change, so a message whose object
// is not the one last evaluated (or is new) is evaluated again. Positions are 0: the results
// of SEARCH have no order to place them in (RFC 5267 §4.4).

import type { SearchProgram } from './search.js';
import { formatSet } from './sequence.js';
import type { MessageMeta } from './store.js';
import { istring } from './encode.js';

/** At most this many live updating searches per session; more get NO [NOUPDATE]. */
export const MAX_UPDATE_CONTEXTS = 8;

interface UpdateContext {
  tag: string;
  uid: boolean;
  prog: Omit<SearchProgram, 'returns'>;
  /** UIDs in the result now. */
  result: Set<number>;
  /** The metadata each message was last evaluated with. */
  evaluated: Map<number, MessageMeta>;
}

/** Evaluates a search on some messages of the view: the UIDs that match. */
export type Evaluate = (prog: Omit<SearchProgram, 'returns'>, msgs: MessageMeta[]) => Promise<Set<number>>;

export class SearchUpdates {
  private readonly contexts = new Map<string, UpdateContext>();

  get size(): number {
    return this.contexts.size;
  }

  /** add - start updating a search whose result over `all` (the whole view) is `hits`. */
  add(tag: string, uid: boolean, prog: Omit<SearchProgram, 'returns'>, hits: MessageMeta[], all: MessageMeta[]): void {
    this.contexts.set(tag, { tag, uid, prog, result: new Set(hits.map((m) => m.uid)), evaluated: new Map(all.map((m) => [m.uid, m])) });
  }

  /** cancel - CANCELUPDATE; false when a tag is not a live search. */
  cancel(tags: string[]): boolean {
    if (!tags.every((t) => this.contexts.has(t))) return false;
    for (const t of tags) this.contexts.delete(t);
    return true;
  }

  clear(): void {
    this.contexts.clear();
  }

  /**
   * removing - REMOVEFROM responses for messages about to be expunged, sent before their
   * EXPUNGE so that message numbers are still the client's (seqOf is asked now).
   */
  removing(uids: number[], seqOf: (uid: number) => number): string {
    let out = '';
    for (const c of this.contexts.values()) {
      const gone = uids.filter((u) => c.result.has(u));
      for (const u of uids) {
        c.result.delete(u);
        c.evaluated.delete(u);
      }
      if (gone.length) out += line(c, 'REMOVEFROM', c.uid ? gone : gone.map(seqOf));
    }
    return out;
  }

  /** refresh - evaluate changed and new messages again; ADDTO/REMOVEFROM for what moved. */
  async refresh(messages: MessageMeta[], seqOf: (uid: number) => number, evaluate: Evaluate): Promise<string> {
    let out = '';
    for (const c of [...this.contexts.values()]) {
      const stale = messages.filter((m) => c.evaluated.get(m.uid) !== m);
      if (!stale.length) continue;
      const now = await evaluate(c.prog, stale);
      if (!this.contexts.has(c.tag)) continue;
      const added: number[] = [];
      const removed: number[] = [];
      for (const m of stale) {
        c.evaluated.set(m.uid, m);
        const was = c.result.has(m.uid);
        const is = now.has(m.uid);
        if (is && !was) added.push(m.uid);
        if (was && !is) removed.push(m.uid);
        if (is) c.result.add(m.uid);
        else c.result.delete(m.uid);
      }
      const nums = (uids: number[]): number[] => (c.uid ? uids : uids.map(seqOf));
      if (removed.length) out += line(c, 'REMOVEFROM', nums(removed));
      if (added.length) out += line(c, 'ADDTO', nums(added));
    }
    return out;
  }
}

function line(c: UpdateContext, what: 'ADDTO' | 'REMOVEFROM', nums: number[]): string {
  const set = formatSet([...nums].sort((a, b) => a - b));
  return `* ESEARCH (TAG ${istring(c.tag)})${c.uid ? ' UID' : ''} ${what} (0 ${set})\r\n`;
}
