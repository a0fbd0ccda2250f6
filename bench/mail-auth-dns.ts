// A child process for the mail-auth benchmark: the test DNS server serving the zone given on
// stdin, its port printed on stdout; runs until stdin closes. (A separate process, so the
// benchmark's CPU figures count the checks only.)

import { startDnsServer } from '../test/helpers/dns-server.js';

let zone = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => (zone += d));
await new Promise((r) => process.stdin.once('end', r));
const dns = await startDnsServer(zone);
process.stdout.write(`${dns.port}\n`);
process.on('SIGTERM', () => void dns.close().then(() => process.exit(0)));
