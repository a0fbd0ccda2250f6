// onCrlfLines - the CRLF-terminated lines a socket receives, one callback each (latin1, so no
// byte is lost to decoding); for the small raw SMTP/POP3 clients of tests and benchmarks.

import type { Socket } from 'node:net';

export function onCrlfLines(sock: Socket, onLine: (line: string) => void): void {
  let buf = '';
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    let i: number;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      onLine(line);
    }
  });
}
