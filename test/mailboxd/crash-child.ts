// Child process for the crash test: runs mailboxd alone with the configuration given as JSON in
// argv[2], prints `ready` once listening, and runs until killed.

import { parseConfig } from '../../src/config/load.js';
import { start } from '../../src/mailboxd/index.js';
import { silentLogger } from '../../src/shared/log.js';

const config = parseConfig(JSON.parse(process.argv[2]!));
await start({ config, logger: silentLogger() });
process.stdout.write('ready\n');
