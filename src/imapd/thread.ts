// THREAD (RFC 5256 §4): ORDEREDSUBJECT and REFERENCES over the facts sort.ts reads, rendered
// as the THREAD response's nested lists. REFERENCES follows the RFC's six steps (the
// Zawinski algorithm): link by Message-ID/References, prune dummies, merge by base subject,
// sort siblings by sent date (message number breaks ties).

import type { MessageFacts } from './sort.js';

export type ThreadAlgorithm = 'ORDEREDSUBJECT' | 'REFERENCES';

interface Node {
  msg: MessageFacts | null;
  parent: Node | null;
  children: Node[];
}

/** threadResponse - the body of `* THREAD ...` for these messages (in message-number order). */
export function threadResponse(algorithm: ThreadAlgorithm, msgs: MessageFacts[], uid: boolean): string {
  const roots = algorithm === 'REFERENCES' ? byReferences(msgs) : byOrderedSubject(msgs);
  const num = (m: MessageFacts): number => (uid ? m.uid : m.seq);
  const inner = (n: Node): string => {
    const kids = n.children;
    const head = n.msg ? String(num(n.msg)) : '';
    if (n.msg && kids.length === 1) return `${head} ${inner(kids[0]!)}`;
    const nested = kids.map((c) => `(${inner(c)})`).join('');
    return n.msg ? (kids.length ? `${head} ${nested}` : head) : nested;
  };
  return roots.map((r) => `(${inner(r)})`).join('');
}

function node(msg: MessageFacts | null): Node {
  return { msg, parent: null, children: [] };
}

/** ORDEREDSUBJECT: same base subject = one thread, the earliest message its parent. */
function byOrderedSubject(msgs: MessageFacts[]): Node[] {
  const sorted = [...msgs].sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : byDate(a, b)));
  const roots: Node[] = [];
  let cur: Node | null = null;
  for (const m of sorted) {
    if (cur && cur.msg!.subject === m.subject) {
      link(cur, node(m));
    } else {
      cur = node(m);
      roots.push(cur);
    }
  }
  return roots.sort((a, b) => byDate(a.msg!, b.msg!));
}

function byDate(a: MessageFacts, b: MessageFacts): number {
  return a.sentDate - b.sentDate || a.seq - b.seq;
}

/** The message a node sorts by: its own, or a dummy's first child's. */
function sortMsg(n: Node): MessageFacts {
  for (let x: Node | undefined = n; x; x = x.children[0]) if (x.msg) return x.msg;
  throw new Error('empty dummy');
}

function link(parent: Node, child: Node): void {
  child.parent = parent;
  parent.children.push(child);
}

function unlink(child: Node): void {
  const p = child.parent;
  if (!p) return;
  p.children.splice(p.children.indexOf(child), 1);
  child.parent = null;
}

/** isWithin - `a` is `b` or one of its descendants. */
function isWithin(a: Node, b: Node): boolean {
  for (let x: Node | null = a; x; x = x.parent) if (x === b) return true;
  return false;
}

function byReferences(msgs: MessageFacts[]): Node[] {
  // (1) Link messages by Message-ID and References.
  const table = new Map<string, Node>();
  const get = (id: string): Node => {
    let n = table.get(id);
    if (!n) table.set(id, (n = node(null)));
    return n;
  };
  for (const m of msgs) {
    // A missing or repeated Message-ID gets a unique one (the first message keeps it).
    let me: Node;
    if (m.messageId !== null && !table.get(m.messageId)?.msg) {
      me = get(m.messageId);
    } else {
      me = node(null);
      table.set(`\0${m.seq}`, me);
    }
    me.msg = m;
    const refs = m.references;
    // (A) each reference the parent of the next, unless linked already or a loop.
    for (let i = 0; i + 1 < refs.length; i++) {
      const a = get(refs[i]!);
      const b = get(refs[i + 1]!);
      if (!b.parent && !isWithin(a, b)) link(a, b);
    }
    // (B) the last reference is this message's parent, replacing any earlier guess.
    unlink(me);
    if (refs.length) {
      const p = get(refs[refs.length - 1]!);
      if (!isWithin(p, me)) link(p, me);
    }
  }
  // (2) Messages without a parent are the roots.
  let roots = [...new Set(table.values())].filter((n) => !n.parent);
  // (3) Dummies go: childless ones entirely, others leave their children in their place
  // (at the top level only when there is just one).
  const prune = (list: Node[], top: boolean): Node[] => {
    const out: Node[] = [];
    for (const n of list) {
      n.children = prune(n.children, false);
      for (const c of n.children) c.parent = n;
      if (!n.msg && (n.children.length === 0 || !top || n.children.length === 1)) {
        for (const c of n.children) c.parent = top ? null : n.parent;
        out.push(...n.children);
        continue;
      }
      out.push(n);
    }
    return out;
  };
  roots = prune(roots, true);
  // (4) The top level by sent date.
  sortSiblings(roots, false);
  // (5) Threads with the same base subject are merged.
  const subjectOf = (n: Node): string => sortMsg(n).subject;
  const isReply = (n: Node): boolean => n.msg !== null && n.msg.replyOrForward;
  const bySubject = new Map<string, Node>();
  for (const n of roots) {
    const s = subjectOf(n);
    if (!s) continue;
    const t = bySubject.get(s);
    if (!t || (t.msg && (!n.msg || (isReply(t) && !isReply(n))))) bySubject.set(s, n);
  }
  for (const n of [...roots]) {
    const s = subjectOf(n);
    if (!s) continue;
    const t = bySubject.get(s)!;
    if (t === n) continue;
    const drop = (): void => void roots.splice(roots.indexOf(n), 1);
    if (!t.msg && !n.msg) {
      for (const c of n.children) link(t, c);
      n.children = [];
      drop();
    } else if (!t.msg || (isReply(n) && !isReply(t))) {
      drop();
      link(t, n);
    } else {
      const d = node(null);
      roots[roots.indexOf(t)] = d;
      drop();
      link(d, t);
      link(d, n);
      bySubject.set(s, d);
    }
  }
  // (6) Every set of siblings by sent date.
  sortSiblings(roots, true);
  return roots;
}

function sortSiblings(list: Node[], deep: boolean): void {
  if (deep) for (const n of list) sortSiblings(n.children, true);
  else for (const n of list) if (!n.msg) sortSiblings(n.children, false);
  list.sort((a, b) => byDate(sortMsg(a), sortMsg(b)));
}
