// NOTIFY (RFC 5465): which mailboxes a client wants to hear about and which events, parsed
// from NOTIFY SET, and which of them applies to a given mailbox. The session does the
// watching and the sending; this file is the grammar and the matching.
//
// A mailbox takes the events of the first group whose filter covers it; SELECTED and
// SELECTED-DELAYED cover only the selected mailbox, and the other filters never do.

import { ParseError, type Token } from './parser.js';

export type NotifyFilter = 'SELECTED' | 'SELECTED-DELAYED' | 'INBOXES' | 'PERSONAL' | 'SUBSCRIBED' | 'SUBTREE' | 'MAILBOXES';

export const SUPPORTED_EVENTS = ['MessageNew', 'MessageExpunge', 'FlagChange', 'MailboxName', 'SubscriptionChange'] as const;
export type NotifyEvent = (typeof SUPPORTED_EVENTS)[number];
const KNOWN_EVENTS = ['AnnotationChange', 'MailboxMetadataChange', 'ServerMetadataChange'];

export interface NotifyGroup {
  filter: NotifyFilter;
  /** SUBTREE / MAILBOXES: the names as the client sent them (wire form). */
  mailboxes: string[];
  events: Set<NotifyEvent>;
  /** MessageNew (fetch-att ...) for the selected mailbox: the FETCH item list, or null. */
  fetch: Token | null;
}

export type NotifyCommand = { kind: 'none' } | { kind: 'set'; status: boolean; groups: NotifyGroup[] };

/** An event we know but do not offer: NO [BADEVENT (supported)] (RFC 5465 §6). */
export class BadEventError extends Error {}

const FILTERS = new Set(['SELECTED', 'SELECTED-DELAYED', 'INBOXES', 'PERSONAL', 'SUBSCRIBED', 'SUBTREE', 'MAILBOXES']);

/** parseNotify - the arguments of NOTIFY. */
export function parseNotify(tokens: Token[]): NotifyCommand {
  const first = tokens[0];
  if (first?.t !== 'atom') throw new ParseError('Expected SET or NONE');
  const verb = first.v.toUpperCase();
  if (verb === 'NONE') {
    if (tokens.length !== 1) throw new ParseError('Too many arguments');
    return { kind: 'none' };
  }
  if (verb !== 'SET') throw new ParseError('Expected SET or NONE');
  let i = 1;
  let status = false;
  const t = tokens[i];
  if (t?.t === 'atom' && t.v.toUpperCase() === 'STATUS') {
    status = true;
    i++;
  }
  const groups: NotifyGroup[] = [];
  for (; i < tokens.length; i++) {
    const g = tokens[i]!;
    if (g.t !== 'list') throw new ParseError('Expected an event group');
    groups.push(parseGroup(g.v));
  }
  if (!groups.length) throw new ParseError('Missing event groups');
  if (groups.length > 50) throw new ParseError('Too many event groups');
  return { kind: 'set', status, groups };
}

function parseGroup(items: Token[]): NotifyGroup {
  const f = items[0];
  if (f?.t !== 'atom' || !FILTERS.has(f.v.toUpperCase())) throw new ParseError('Bad mailbox filter');
  const filter = f.v.toUpperCase() as NotifyFilter;
  let k = 1;
  const mailboxes: string[] = [];
  if (filter === 'SUBTREE' || filter === 'MAILBOXES') {
    const m = items[k++];
    if (!m) throw new ParseError('Missing mailboxes');
    for (const x of m.t === 'list' ? m.v : [m]) {
      if (x.t === 'list') throw new ParseError('Bad mailbox name');
      mailboxes.push(x.v);
    }
    if (!mailboxes.length || mailboxes.length > 100) throw new ParseError('Bad mailbox list');
  }
  const ev = items[k++];
  if (!ev || k !== items.length) throw new ParseError('Bad event group');
  const events = new Set<NotifyEvent>();
  let fetch: Token | null = null;
  if (ev.t === 'atom' && ev.v.toUpperCase() === 'NONE') return { filter, mailboxes, events, fetch };
  if (ev.t !== 'list' || !ev.v.length) throw new ParseError('Bad event list');
  for (let j = 0; j < ev.v.length; j++) {
    const e = ev.v[j]!;
    if (e.t !== 'atom') throw new ParseError('Bad event');
    const name = SUPPORTED_EVENTS.find((x) => x.toLowerCase() === e.v.toLowerCase());
    if (!name) {
      if (KNOWN_EVENTS.some((x) => x.toLowerCase() === e.v.toLowerCase())) throw new BadEventError(e.v);
      throw new ParseError(`Unknown event ${e.v.slice(0, 40)}`);
    }
    events.add(name);
    if (name === 'MessageNew' && ev.v[j + 1]?.t === 'list') {
      fetch = ev.v[++j]!;
      if (filter !== 'SELECTED' && filter !== 'SELECTED-DELAYED') throw new ParseError('Fetch attributes are for the selected mailbox only');
    }
  }
  return { filter, mailboxes, events, fetch };
}

/** The mailbox facts the other filters are decided on. */
export interface MailboxFacts {
  name: string;
  subscribed: boolean;
}

/**
 * groupFor - the group whose events apply to a mailbox (null: none), given whether it is the
 * selected one. `decode` turns a client-sent name into ours (modified UTF-7, INBOX case).
 */
export function groupFor(groups: NotifyGroup[], box: MailboxFacts, selected: boolean, decode: (wire: string) => string | null, delimiter: string): NotifyGroup | null {
  for (const g of groups) {
    switch (g.filter) {
      case 'SELECTED':
      case 'SELECTED-DELAYED':
        if (selected) return g;
        break;
      case 'INBOXES':
        if (!selected && box.name === 'INBOX') return g;
        break;
      case 'PERSONAL':
        if (!selected) return g;
        break;
      case 'SUBSCRIBED':
        if (!selected && box.subscribed) return g;
        break;
      case 'MAILBOXES':
        if (!selected && g.mailboxes.some((m) => decode(m) === box.name)) return g;
        break;
      case 'SUBTREE':
        if (!selected && g.mailboxes.some((m) => {
          const root = decode(m);
          return root !== null && (box.name === root || box.name.startsWith(root + delimiter));
        })) return g;
        break;
    }
  }
  return null;
}

/** statusItems - what a STATUS notification holds for these events (Dovecot's choice and order). */
export function statusItems(events: Set<NotifyEvent>): string[] {
  const items: string[] = [];
  if (events.has('MessageNew') || events.has('MessageExpunge')) items.push('MESSAGES');
  if (events.has('MessageNew')) items.push('UIDNEXT', 'UIDVALIDITY');
  if (events.has('FlagChange')) {
    if (!items.includes('UIDVALIDITY')) items.push('UIDVALIDITY');
    items.push('HIGHESTMODSEQ');
  }
  return items;
}
