// Hosts for the multi-host tests: one network namespace per host (`ip netns` + a veth pair into
// a bridge in ours, addresses 10.213.N.H/24 of our own choosing), or, where namespaces cannot be
// made (not root, no `ip`), distinct loopback addresses 127.213.N.H. Each host gets its own data
// folder; its processes run `fmail start SERVERS` inside its namespace. cleanup() kills what was
// started and deletes the namespaces and the bridge.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { FMAIL } from '../helpers/fmail-process.js';

export interface Host {
  name: string;
  addr: string;
  dir: string;
  /** The namespace, or null on the loopback fallback. */
  ns: string | null;
  /** Our end of the host's veth (its byte counters are the host's traffic), or null on loopback. */
  iface: string | null;
  procs: ChildProcess[];
  output: string[];
}

export interface Net {
  /** 'netns' or 'loopback'. */
  kind: string;
  /** The address the test's own servers (a sink) listen on, reachable from every host. */
  gateway: string;
  hosts: Map<string, Host>;
  start(host: string, servers: string[], configFile: string): Promise<ChildProcess>;
  cleanup(): void;
}

function ip(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: r.stderr ?? String(r.error) };
}

/** makeNet - hosts NAMES (in this order: .1, .2, ...) under ROOT, each with its own data folder. */
export function makeNet(root: string, names: string[]): Net {
  // A subnet per test run, so two runs at once do not collide: with namespaces, the bridge is
  // named after the subnet and `ip link add` claims it atomically (a taken one: the next).
  let n = 1 + (process.pid % 250);
  const tag = `fm${process.pid % 100000}`;
  let bridge = `fmnet${n}`;
  const hosts = new Map<string, Host>();
  const made: string[] = [];
  let kind = 'loopback';
  let gateway = `127.213.${n}.254`;
  const canNetns = process.getuid?.() === 0 && !process.env.FMAIL_TEST_NO_NETNS && ip(['netns', 'add', `${tag}probe`]).ok;
  if (canNetns) {
    ip(['netns', 'del', `${tag}probe`]);
    kind = 'netns';
    const must = (args: string[]): void => {
      const r = ip(args);
      if (!r.ok) throw new Error(`ip ${args.join(' ')}: ${r.err}`);
    };
    for (let tries = 0; ; tries++) {
      bridge = `fmnet${n}`;
      const r = ip(['link', 'add', bridge, 'type', 'bridge']);
      if (r.ok) break;
      if (!/exists/i.test(r.err) || tries >= 250) throw new Error(`ip link add ${bridge}: ${r.err}`);
      n = 1 + (n % 250);
    }
    gateway = `10.213.${n}.254`;
    must(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
    must(['link', 'set', bridge, 'up']);
    names.forEach((name, i) => {
      const ns = `${tag}-${name}`;
      must(['netns', 'add', ns]);
      made.push(ns);
      must(['link', 'add', `${tag}v${i}`, 'type', 'veth', 'peer', 'name', `${tag}p${i}`]);
      must(['link', 'set', `${tag}p${i}`, 'netns', ns]);
      must(['link', 'set', `${tag}v${i}`, 'master', bridge, 'up']);
      must(['-n', ns, 'link', 'set', 'lo', 'up']);
      must(['-n', ns, 'addr', 'add', `10.213.${n}.${i + 1}/24`, 'dev', `${tag}p${i}`]);
      must(['-n', ns, 'link', 'set', `${tag}p${i}`, 'up']);
    });
  }
  names.forEach((name, i) => {
    const dir = path.join(root, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const addr = kind === 'netns' ? `10.213.${n}.${i + 1}` : `127.213.${n}.${i + 1}`;
    hosts.set(name, { name, addr, dir, ns: kind === 'netns' ? `${tag}-${name}` : null, iface: kind === 'netns' ? `${tag}v${i}` : null, procs: [], output: [] });
  });

  return {
    kind,
    gateway,
    hosts,
    async start(hostName, servers, configFile) {
      const h = hosts.get(hostName)!;
      const argv = [process.execPath, FMAIL, 'start', ...servers, '-c', configFile];
      // `ip netns exec` execs the command: the child's pid is node's own (a SIGKILL reaches it).
      const child = h.ns ? spawn('ip', ['netns', 'exec', h.ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      h.procs.push(child);
      child.stderr!.on('data', (d: Buffer) => h.output.push(d.toString()));
      const lines = createInterface({ input: child.stdout! });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${hostName} ${servers.join(',')} did not come up: ${h.output.join('').slice(-3000)}`)), 30_000);
        lines.on('line', (line) => {
          h.output.push(line);
          if (line.includes('running')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${hostName} ${servers.join(',')} exited with ${code}: ${h.output.join('').slice(-3000)}`));
        });
      });
      return child;
    },
    cleanup() {
      for (const h of hosts.values()) for (const p of h.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      for (const ns of made) ip(['netns', 'del', ns]);
      if (kind === 'netns') ip(['link', 'del', bridge]);
    },
  };
}

/** stopAll - SIGTERM every process of every host and wait (bounded) for them. */
export async function stopAll(net: Net): Promise<void> {
  const all = [...net.hosts.values()].flatMap((h) => h.procs).filter((p) => p.exitCode === null && p.signalCode === null);
  await Promise.all(
    all.map(async (p) => {
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.kill('SIGTERM');
      await once(p, 'exit');
      clearTimeout(timer);
    }),
  );
}
