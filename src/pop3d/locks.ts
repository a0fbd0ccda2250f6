// MaildropLocks - one POP3 session per maildrop at a time (RFC 1939 §8: the server should
// lock the maildrop; RFC 2449 [IN-USE] for the second login). In-process: every pop3d of a
// deployment runs in one process per mailboxd, as `fmail start` does.

export class MaildropLocks {
  private readonly held = new Set<string>();

  /** tryAcquire - true if USER's maildrop was free and is now held by the caller. */
  tryAcquire(user: string): boolean {
    if (this.held.has(user)) return false;
    this.held.add(user);
    return true;
  }

  release(user: string): void {
    this.held.delete(user);
  }

  get size(): number {
    return this.held.size;
  }
}
