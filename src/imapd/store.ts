// The mailbox model imapd works against: one user's folders and messages, as mailboxd keeps
// them. The session code sees only this interface; mailboxd-store.ts implements it over
// mailboxd IPC, and the tests have an in-memory one.

/** One message's metadata: what SELECT, FETCH FLAGS and SEARCH need without the bytes. */
export interface MessageMeta {
  uid: number;
  /** System flags with their backslash (`\Seen`) and keywords, as stored. */
  flags: string[];
  /** CONDSTORE mod-sequence of the message's last change (1 when the store keeps none). */
  modseq: number;
  size: number;
  /** Arrival time, ms since the epoch (INTERNALDATE). */
  internalDate: number;
}

export interface FolderInfo {
  /** Full name with `delimiter` between levels; INBOX is `INBOX`. */
  name: string;
  subscribed: boolean;
  /** False for a subscription whose folder does not exist (LSUB, LIST SUBSCRIBED). */
  exists: boolean;
}

export interface FolderStatus {
  messages: number;
  unseen: number;
  uidnext: number;
  uidvalidity: number;
  highestModseq: number;
  size: number;
}

/** What SELECT loads: every message, ascending by UID. */
export interface FolderState {
  uidvalidity: number;
  uidnext: number;
  highestModseq: number;
  messages: MessageMeta[];
}

/**
 * What changed in a folder since a mod-sequence: messages added or whose flags changed
 * (modseq > since), and UIDs expunged since then. `full` instead when the store cannot tell
 * (the session then diffs the whole state).
 */
export type FolderChanges =
  | { kind: 'delta'; highestModseq: number; uidnext: number; changed: MessageMeta[]; expunged: number[] }
  | { kind: 'full'; state: FolderState };

export type FlagMode = 'add' | 'remove' | 'replace';

export interface StoreResult {
  /** Messages whose flags are now as listed (changed or not, when asked). */
  updated: MessageMeta[];
  /** UIDs left alone because their modseq was above UNCHANGEDSINCE. */
  modified: number[];
}

export interface CopyResult {
  uidvalidity: number;
  /** [source UID, new UID] in source order. */
  pairs: Array<[number, number]>;
}

export class StoreError extends Error {
  constructor(
    /** An IMAP response code for the NO: NONEXISTENT, ALREADYEXISTS, OVERQUOTA, TOOBIG, CANNOT, SERVERBUG... */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One user's mail, for one IMAP session. Folder names are validated by the session first. */
export interface UserMail {
  /** Hierarchy delimiter between folder levels. */
  readonly delimiter: string;
  folders(): Promise<FolderInfo[]>;
  create(name: string): Promise<void>;
  remove(name: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  subscribe(name: string, on: boolean): Promise<void>;
  status(name: string): Promise<FolderStatus>;
  state(name: string): Promise<FolderState>;
  changes(name: string, sinceModseq: number): Promise<FolderChanges>;
  /** The raw message, or null when it is gone (expunged meanwhile). */
  fetch(name: string, uid: number): Promise<Buffer | null>;
  append(name: string, data: Buffer, flags: string[], internalDate: number | null): Promise<{ uidvalidity: number; uid: number }>;
  copy(from: string, uids: number[], to: string, move: boolean): Promise<CopyResult>;
  setFlags(name: string, uids: number[], mode: FlagMode, flags: string[], unchangedSince?: number): Promise<StoreResult>;
  /** Remove exactly these messages (the session picks the \Deleted ones); returns the UIDs removed. */
  expunge(name: string, uids: number[]): Promise<number[]>;
  /** Call `onChange` (soon, coalesced) whenever the folder changes, by anyone. Returns the unwatch. */
  watch(name: string, onChange: () => void): () => void;
  close(): void;
}

export interface MailStore {
  open(user: string): Promise<UserMail>;
}
