// The server registry: name -> its folder's `start`. Loaded on demand so a one-server process
// only loads the code it runs.

import { SERVER_NAMES, type ServerName, type StartServer } from '../shared/server-module.js';

export { SERVER_NAMES, type ServerName };

/** Start order: the servers others call come first; stop order is the reverse. */
export const START_ORDER: readonly ServerName[] = ['authd', 'queued', 'mailboxd', 'smtp-out', 'router', 'smtpd', 'pop3d', 'imapd'];

export function isServerName(name: string): name is ServerName {
  return (SERVER_NAMES as readonly string[]).includes(name);
}

/** loadServer - the `start` function of one server, or null if that server is not built yet. */
export async function loadServer(name: ServerName): Promise<StartServer | null> {
  try {
    const mod = (await import(`../${name}/index.js`)) as { start?: StartServer };
    return mod.start ?? null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(`/${name}/index.js`)) {
      return null;
    }
    throw err;
  }
}
