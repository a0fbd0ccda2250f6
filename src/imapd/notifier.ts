// Notifier - one session's NOTIFY (RFC 5465) at work: it watches the mailboxes NOTIFY SET
// named (other than the selected one), turns their changes into STATUS responses, and turns
// other sessions' folder events into LIST responses. The session decides when to write what
// collect() returns: at once when it is between commands, else at the next completion.

import { istring } from './encode.js';
import { type MailboxEvent, onMailboxEvents } from './mailbox-events.js';
import { toWire } from './names.js';
import { type NotifyGroup, groupFor, statusItems } from './notify.js';
import type { FolderStatus, UserMail } from './store.js';

/** Mailboxes watched at most; NOTIFY SET over more answers NO [NOTIFICATIONOVERFLOW]. */
export const MAX_NOTIFY_MAILBOXES = 200;

export class NotifyOverflowError extends Error {}

export interface NotifierDeps {
  user: string;
  sessionId: number;
  mail: UserMail;
  /** Something is waiting in collect(). */
  wake(): void;
  /** The selected mailbox's name, or null. */
  selected(): string | null;
  /** A client-sent (wire) mailbox name as ours, or null when it is not a valid name. */
  decode(wire: string): string | null;
}

export class Notifier {
  groups: NotifyGroup[] = [];
  private readonly watches = new Map<string, () => void>();
  private readonly last = new Map<string, FolderStatus>();
  /** The group each watched mailbox took its events from at NOTIFY SET. */
  private readonly groupOf = new Map<string, NotifyGroup>();
  private readonly pending = new Set<string>();
  private lines = '';
  private unbus: (() => void) | null = null;

  constructor(private readonly deps: NotifierDeps) {}

  get active(): boolean {
    return this.groups.length > 0;
  }

  /** selectedGroup - the events asked for the selected mailbox (SELECTED / SELECTED-DELAYED). */
  selectedGroup(): NotifyGroup | null {
    return this.groups.find((g) => g.filter === 'SELECTED' || g.filter === 'SELECTED-DELAYED') ?? null;
  }

  /**
   * set - NOTIFY SET: watch every mailbox a group with message events covers; with `status`,
   * return their STATUS now (RFC 5465 §3.1).
   */
  async set(groups: NotifyGroup[], status: boolean): Promise<string> {
    this.stop();
    const { mail, selected } = this.deps;
    const folders = (await mail.folders()).filter((f) => f.exists);
    const chosen: Array<{ name: string; items: string[]; group: NotifyGroup }> = [];
    for (const f of folders) {
      if (f.name === selected()) continue;
      const g = groupFor(groups, { name: f.name, subscribed: f.subscribed }, false, this.deps.decode, mail.delimiter);
      const items = g ? statusItems(g.events) : [];
      if (g && items.length) chosen.push({ name: f.name, items, group: g });
    }
    if (chosen.length > MAX_NOTIFY_MAILBOXES) throw new NotifyOverflowError('Too many mailboxes to watch');
    this.groups = groups;
    this.unbus = onMailboxEvents(this.deps.user, this.deps.sessionId, (e) => this.mailboxEvent(e));
    let out = '';
    for (const c of chosen) {
      let st: FolderStatus;
      try {
        st = await mail.status(c.name);
      } catch {
        continue;
      }
      this.last.set(c.name, st);
      this.groupOf.set(c.name, c.group);
      if (status) out += statusLine(c.name, c.items, st);
      this.watches.set(
        c.name,
        mail.watch(c.name, () => {
          this.pending.add(c.name);
          this.deps.wake();
        }),
      );
    }
    return out;
  }

  /** stop - NOTIFY NONE, logout. */
  stop(): void {
    for (const off of this.watches.values()) off();
    this.watches.clear();
    this.last.clear();
    this.groupOf.clear();
    this.pending.clear();
    this.lines = '';
    this.unbus?.();
    this.unbus = null;
    this.groups = [];
  }

  /** collect - STATUS for watched mailboxes that changed, LIST for folder events; '' when none. */
  async collect(): Promise<string> {
    let out = this.lines;
    this.lines = '';
    const names = [...this.pending];
    this.pending.clear();
    for (const name of names) {
      if (name === this.deps.selected()) continue;
      const g = this.groupOf.get(name);
      let st: FolderStatus;
      try {
        st = await this.deps.mail.status(name);
      } catch {
        continue;
      }
      const before = this.last.get(name);
      this.last.set(name, st);
      if (!g || !before) continue;
      const counts = st.messages !== before.messages || st.uidnext !== before.uidnext || st.uidvalidity !== before.uidvalidity;
      const flags = st.highestModseq !== before.highestModseq;
      const wants = (g.events.has('MessageNew') || g.events.has('MessageExpunge')) && counts;
      if (wants || (g.events.has('FlagChange') && flags && !counts)) out += statusLine(name, statusItems(g.events), st);
    }
    return out;
  }

  private mailboxEvent(e: MailboxEvent): void {
    const { mail } = this.deps;
    const subscribed = e.kind === 'subscription' ? e.subscribed : true;
    const g = groupFor(this.groups, { name: e.name, subscribed }, e.name === this.deps.selected(), this.deps.decode, mail.delimiter);
    const d = istring(mail.delimiter);
    const n = istring(toWire(e.name));
    if (e.kind === 'subscription') {
      if (g?.events.has('SubscriptionChange')) this.lines += `* LIST (${e.subscribed ? '\\Subscribed' : ''}) ${d} ${n}\r\n`;
    } else if (g?.events.has('MailboxName')) {
      if (e.kind === 'created') this.lines += `* LIST () ${d} ${n}\r\n`;
      else if (e.kind === 'deleted') this.lines += `* LIST (\\NonExistent) ${d} ${n}\r\n`;
      else if (e.kind === 'renamed') this.lines += `* LIST () ${d} ${n} ("OLDNAME" (${istring(toWire(e.oldName))}))\r\n`;
    } else {
      return;
    }
    this.deps.wake();
  }
}

function statusLine(name: string, items: string[], st: FolderStatus): string {
  const v: Record<string, number> = { MESSAGES: st.messages, UIDNEXT: st.uidnext, UIDVALIDITY: st.uidvalidity, HIGHESTMODSEQ: st.highestModseq };
  return `* STATUS ${istring(toWire(name))} (${items.map((i) => `${i} ${v[i]}`).join(' ')})\r\n`;
}
