// authd handlers - the IPC message table: verify, auth, resolve, domain.
//
// Every name from the wire is checked here, at the boundary: canonicalUser + isSafeUserName
// (no `/`, `..`, NUL, white space); anything else is `error` before any lookup.

import { type IpcServer, type Reply, error, failure, ok } from '../ipc/index.js';
import type { Logger } from '../shared/log.js';
import { canonicalUser, isSafeUserName } from '../mail/address.js';
import { normalizeIp } from '../shared/client-ip.js';
import type { Directory } from './directory.js';
import type { AttemptLimiter } from './limiter.js';
import { authAttempts } from './metrics.js';
import { verifyPassword } from './password.js';

export const AUTH_FAILED = 'authentication failed';
export const TOO_MANY = 'too many attempts';

export interface AuthdState {
  directory: Directory;
  limiter: AttemptLimiter;
  /** A stored hash with the current cost, checked for unknown users so they take as long. */
  dummyHash: string;
  logger: Logger;
}

/** registerHandlers - the authd messages on an IPC server. */
export function registerHandlers(server: IpcServer, st: AuthdState): void {
  server.on('verify', {
    params: 1,
    handle: (ctx) => {
      st.directory.refresh();
      return st.directory.resolve(ctx.params[0]!).length > 0 ? ok() : error('no such user');
    },
  });

  server.on('resolve', {
    params: 1,
    handle: (ctx) => {
      st.directory.refresh();
      const users = st.directory.resolve(ctx.params[0]!);
      return users.length > 0 ? ok(...users) : error('no such user');
    },
  });

  server.on('mailhost', {
    params: 1,
    handle: (ctx) => {
      st.directory.refresh();
      const user = canonicalUser(ctx.params[0]!);
      if (st.directory.password(user) === undefined) return failure('5.1.1', `unknown user ${user.slice(0, 200)}`);
      const host = st.directory.mailhost(user);
      return host ? ok(host) : ok();
    },
  });

  server.on('domain', {
    params: 1,
    handle: (ctx) => {
      st.directory.refresh();
      return st.directory.isLocalDomain(ctx.params[0]!) ? ok() : error('not a local domain');
    },
  });

  server.on('auth', { params: [2, 3], handle: (ctx) => auth(st, ctx.params[0]!, ctx.params[1]!, ctx.params[2]) });
}

/** auth - check a password, rate limited per user and per client address. */
async function auth(st: AuthdState, rawUser: string, password: string, clientIp?: string): Promise<Reply> {
  const user = canonicalUser(rawUser);
  if (!isSafeUserName(user)) {
    authAttempts.inc({ result: 'invalid' });
    return error(AUTH_FAILED);
  }
  // One spelling per client (::ffff:192.0.2.7 is 192.0.2.7), so a client cannot dodge its limit.
  const ip = clientIp ? normalizeIp(clientIp) : '';
  const keys = ip ? [`u:${user}`, `ip:${ip}`] : [`u:${user}`];
  if (!(await st.limiter.acquire(keys))) {
    authAttempts.inc({ result: 'limited' });
    st.logger.warn({ event: 'authd.limited', user, client: ip }, 'too many failed attempts; not checking');
    return error(TOO_MANY);
  }
  let good = false;
  try {
    st.directory.refresh();
    const stored = st.directory.password(user);
    // Unknown user: verify against a dummy hash anyway, so both failures take as long.
    const checked = await verifyPassword(stored || st.dummyHash, password);
    good = checked && !!stored;
  } finally {
    st.limiter.release(keys, !good);
  }
  if (good) st.limiter.forgive(`u:${user}`);
  authAttempts.inc({ result: good ? 'ok' : 'failed' });
  st.logger.info({ event: good ? 'authd.auth_ok' : 'authd.auth_failed', user, client: ip }, good ? 'authenticated' : 'authentication failed');
  if (!good) return error(AUTH_FAILED);
  // The user's mailbox host as a second parameter only when it has one (seed clients read USER).
  const host = st.directory.mailhost(user);
  return host ? ok(user, host) : ok(user);
}
