// The trust boundary for user names: a name becomes a folder only if it is safe as one and
// authd knows the user. Everything that builds a Maildir path goes through here.

import path from 'node:path';

import type { IpcClient } from '../ipc/index.js';
import { canonicalUser, isSafeUserName } from '../mail/address.js';

/** A bare local name (no domain), e.g. the seed's `user_john`: letters, digits, `._+-`. */
const BARE_USER_RE = /^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$/;

/** safeUser - the canonical folder name for USER, or null if it could escape or is malformed. */
export function safeUser(raw: string): string | null {
  const user = canonicalUser(raw);
  const ok = isSafeUserName(user) || (BARE_USER_RE.test(user) && !user.includes('..'));
  return ok ? user : null;
}

/** userDir - the user's Maildir under `root`; throws if it would not be inside it. */
export function userDir(root: string, user: string): string {
  const dir = path.resolve(root, user);
  if (path.dirname(dir) !== path.resolve(root)) throw new Error(`user folder outside the mail root: ${user}`);
  return dir;
}

/** A refusal carries its enhanced status code: 5.1.x the name is wrong, 4.x try again later. */
export type UserCheck = { ok: true; user: string } | { ok: false; status: string; message: string };

/**
 * checkUser - safe name, and a mailbox user of its own in authd: `resolve: USER` must list USER
 * itself, so an alias or `user+tag` address never gets a Maildir of its own (the router resolves
 * those first). An authd without `resolve` is asked `verify` instead. The error text is what
 * the client sees.
 */
export async function checkUser(authd: Pick<IpcClient, 'request'>, raw: string): Promise<UserCheck> {
  const user = safeUser(raw);
  if (!user) return { ok: false, status: '5.1.3', message: 'bad user name' };
  try {
    const r = await authd.request('resolve', [user]);
    if (r.ok) return r.params.some((u) => canonicalUser(u) === user) ? { ok: true, user } : { ok: false, status: '5.1.1', message: `${user} is not a mailbox (an alias)` };
    if (!/^unknown message/.test(r.params[0] ?? '')) return { ok: false, status: '5.1.1', message: `unknown user ${user}` };
    const v = await authd.request('verify', [user]);
    return v.ok ? { ok: true, user } : { ok: false, status: '5.1.1', message: `unknown user ${user}` };
  } catch {
    return { ok: false, status: '4.4.3', message: 'user database unavailable, try again later' };
  }
}
