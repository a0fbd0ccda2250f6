// Folder events between the sessions of one imapd: a session that creates, deletes, renames,
// subscribes or unsubscribes a folder says so here, and the user's other sessions with NOTIFY
// MailboxName / SubscriptionChange (RFC 5465 §5.4, §5.5) pass it on as LIST responses.
// In-process only: sessions of the same user on another imapd hear of it at their next LIST.

import { EventEmitter } from 'node:events';

export type MailboxEvent =
  | { kind: 'created' | 'deleted'; name: string }
  | { kind: 'renamed'; name: string; oldName: string }
  | { kind: 'subscription'; name: string; subscribed: boolean };

const bus = new EventEmitter();
bus.setMaxListeners(0);

/** emitMailboxEvent - tell the user's other sessions; `from` is the sender's session id. */
export function emitMailboxEvent(user: string, from: number, e: MailboxEvent): void {
  bus.emit(user, from, e);
}

/** onMailboxEvents - listen for a user's events from other sessions; returns the unsubscribe. */
export function onMailboxEvents(user: string, self: number, fn: (e: MailboxEvent) => void): () => void {
  const h = (from: number, e: MailboxEvent): void => {
    if (from !== self) fn(e);
  };
  bus.on(user, h);
  return () => bus.off(user, h);
}
