// Soak: 100,000 messages through the whole chain — SMTP in (Postfix's smtp-source, 20 sessions,
// 4 KiB) -> smtpd -> queued -> router -> mailboxd, then POP3 (pop3d: STAT, DELE all, QUIT) — in
// rounds of 10,000 against one `fmail start` process. After each round, once the Maildir is
// empty again and the process is idle, its resident memory (VmRSS) and open file descriptors
// are read from /proc. Figures: RSS after the warm-up round vs after the last (growth must
// stay within 10 %), and the fds after each round vs the idle count before any mail.
//
// BENCH_MESSAGES (default 100000) and BENCH_ROUND (default 10000). Needs smtp-source (postfix).

import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { startFmail, writeFmailConfig } from '../test/helpers/fmail-process.js';
import { onCrlfLines } from '../test/helpers/lines.js';
import { tempDir } from '../test/helpers/tmp.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUND = Number(process.env.BENCH_ROUND ?? 10_000);
const USER = 'soak@bench.test';
const PASSWORD = 'soak-secret';

function proc(pid: number): { rssMiB: number; fds: number; sockets: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const fds = readdirSync(`/proc/${pid}/fd`);
  let sockets = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++;
    } catch {
      // closed meanwhile
    }
  }
  return { rssMiB: kb / 1024, fds: fds.length, sockets };
}

function inMaildir(dir: string): number {
  let n = 0;
  for (const sub of ['new', 'cur']) {
    try {
      n += readdirSync(path.join(dir, sub)).filter((f) => !f.startsWith('.')).length;
    } catch {
      // not yet created
    }
  }
  return n;
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

/** popDeleteAll - one POP3 session: USER/PASS, STAT, DELE 1..N pipelined, QUIT; returns N. */
async function popDeleteAll(port: number): Promise<number> {
  const sock = net.connect(port, '127.0.0.1');
  const waiters: Array<(l: string) => void> = [];
  onCrlfLines(sock, (line) => waiters.shift()?.(line));
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  sock.on('error', () => {});
  const reply = (): Promise<string> => new Promise((r) => waiters.push(r));
  const cmd = async (line: string): Promise<string> => {
    const p = reply();
    sock.write(line + '\r\n');
    return p;
  };
  try {
    await reply();
    await cmd(`USER ${USER}`);
    const pass = await cmd(`PASS ${PASSWORD}`);
    if (!pass.startsWith('+OK')) throw new Error(`POP3 login: ${pass}`);
    const n = Number(/^\+OK (\d+)/.exec(await cmd('STAT'))?.[1] ?? 0);
    const replies = Array.from({ length: n }, () => reply());
    sock.write(Array.from({ length: n }, (_, i) => `DELE ${i + 1}\r\n`).join(''));
    await Promise.all(replies);
    await cmd('QUIT');
    return n;
  } finally {
    sock.end();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
    sock.destroy();
  }
}

if (spawnSync('sh', ['-c', 'command -v smtp-source'], { stdio: 'ignore' }).status !== 0) {
  console.log('soak: skipped (needs smtp-source from the postfix package)');
} else {
  const tmp = tempDir('fmail-soak-');
  const setup = await writeFmailConfig(tmp.dir);
  writeFileSync(path.join(tmp.dir, 'users'), `${USER}:{PLAIN}${PASSWORD}::::::\n`);
  const fmail = await startFmail(setup);
  const pid = fmail.child.pid!;
  const maildir = path.join(tmp.dir, 'mail', USER);
  try {
    await new Promise((r) => setTimeout(r, 3000));
    const idle = proc(pid);
    console.log(`soak: ${MESSAGES.toLocaleString('en-US')} messages in rounds of ${ROUND.toLocaleString('en-US')} (smtp-source -s 20 -l 4096 -> Maildir -> POP3 DELE), one fmail start process`);
    console.log(`idle before mail: RSS ${idle.rssMiB.toFixed(1)} MiB, ${idle.fds} fds (${idle.sockets} sockets)`);
    const rounds: Array<{ n: number; rssMiB: number; fds: number; sockets: number; rate: number }> = [];
    for (let sent = 0; sent < MESSAGES; sent += ROUND) {
      const n = Math.min(ROUND, MESSAGES - sent);
      const t0 = Date.now();
      const src = spawnSync('smtp-source', ['-s', '20', '-m', String(n), '-l', '4096', '-f', 'sender@client.test', '-t', USER, `127.0.0.1:${setup.ports.smtp}`], {
        encoding: 'utf8',
        timeout: 600_000,
      });
      if (src.status !== 0) console.log(`  smtp-source: ${(src.stderr + src.stdout).trim().slice(0, 300)}`);
      if (!(await until(() => inMaildir(maildir) >= n, 600_000))) {
        console.log(`  round ${rounds.length + 1}: only ${inMaildir(maildir)} of ${n} delivered; stopping`);
        break;
      }
      const rate = n / ((Date.now() - t0) / 1000);
      let removed = 0;
      for (let i = 0; i < 5 && inMaildir(maildir) > 0; i++) removed += await popDeleteAll(setup.ports.pop3);
      await until(() => inMaildir(maildir) === 0, 30_000);
      // Idle again: cached SMTP/IPC sessions closed, timers run.
      await new Promise((r) => setTimeout(r, 6000));
      const p = proc(pid);
      rounds.push({ n: sent + n, ...p, rate });
      console.log(
        `  after ${(sent + n).toLocaleString('en-US').padStart(7)}: RSS ${p.rssMiB.toFixed(1).padStart(6)} MiB, ${String(p.fds).padStart(3)} fds` +
          ` (${p.sockets} sockets), ${rate.toFixed(0)} msg/s in, ${removed} deleted by POP3`,
      );
    }
    if (rounds.length >= 2) {
      const warm = rounds[0]!;
      const last = rounds[rounds.length - 1]!;
      const peak = Math.max(...rounds.map((r) => r.rssMiB));
      console.log(
        `RSS after warm-up (${warm.n.toLocaleString('en-US')}) ${warm.rssMiB.toFixed(1)} MiB -> after ${last.n.toLocaleString('en-US')} ${last.rssMiB.toFixed(1)} MiB: ` +
          `growth ${(((last.rssMiB - warm.rssMiB) / warm.rssMiB) * 100).toFixed(1)} % (peak ${peak.toFixed(1)} MiB); ` +
          `fds: idle before any mail ${idle.fds}, after the warm-up ${warm.fds} (the servers' persistent IPC connections, ` +
          `both ends in this process), after each later round ${[...new Set(rounds.slice(1).map((r) => r.fds))].join('/')}`,
      );
    }
  } finally {
    await fmail.stop('SIGTERM');
    tmp.cleanup();
  }
}
