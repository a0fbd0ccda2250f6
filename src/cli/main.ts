// fmail - the FancyMail command: run servers, talk IPC, administer users and queues.

import { Command } from 'commander';

import { ConfigError } from '../config/load.js';
import { VERSION } from '../shared/version.js';
import { registerIpc } from './ipc.js';
import { registerStart } from './start.js';

const program = new Command();
program.name('fmail').description('FancyMail mail server').version(VERSION, '-V, --version');
program.showHelpAfterError();

registerStart(program);
registerIpc(program);

// Commands added by later servers register themselves here.
for (const mod of ['./user.js', './queue.js', './admin.js', './dkim.js', './dns.js', './db.js']) {
  try {
    const m = (await import(mod)) as { register?: (p: Command) => void };
    m.register?.(program);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
  }
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const msg = err instanceof ConfigError ? err.message : `fmail: ${(err as Error).message}`;
  process.stderr.write(msg + '\n');
  process.exitCode = 2;
}
