// IPC addresses - `socket://HOST:PORT` (TCP) and `unix:///absolute/path` (Unix domain socket).

import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';

export type IpcAddress =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string };

export class AddressError extends Error {}

/** parseAddress - a written address to its parts; AddressError names what is wrong. */
export function parseAddress(text: string): IpcAddress {
  const s = text.trim();
  if (s.startsWith('unix://')) {
    const path = s.slice('unix://'.length);
    if (!path.startsWith('/')) throw new AddressError(`unix address needs an absolute path (unix:///path): ${text}`);
    if (path.includes('\0')) throw new AddressError('unix address contains NUL');
    return { kind: 'unix', path };
  }
  if (s.startsWith('socket://')) {
    const rest = s.slice('socket://'.length);
    const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(rest) ?? /^([^:/\s\[\]]+):(\d+)$/.exec(rest);
    if (!m) throw new AddressError(`expected socket://HOST:PORT, got ${text}`);
    const port = Number(m[2]);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new AddressError(`port out of range in ${text}`);
    return { kind: 'tcp', host: m[1]!, port };
  }
  throw new AddressError(`unsupported IPC address ${JSON.stringify(text)}: use socket://HOST:PORT or unix:///path`);
}

/** formatAddress - the written form of an address. */
export function formatAddress(addr: IpcAddress): string {
  if (addr.kind === 'unix') return `unix://${addr.path}`;
  return addr.host.includes(':') ? `socket://[${addr.host}]:${addr.port}` : `socket://${addr.host}:${addr.port}`;
}

/** isLoopback - whether an address can only be reached from this machine. */
export function isLoopback(addr: IpcAddress): boolean {
  if (addr.kind === 'unix') return true;
  return addr.host === 'localhost' || addr.host === '::1' || addr.host.startsWith('127.');
}

/** listenOn - bind a net.Server to an address; resolves with the address actually bound. */
export async function listenOn(server: net.Server, addr: IpcAddress): Promise<IpcAddress> {
  if (addr.kind === 'unix') removeStaleSocket(addr.path);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (addr.kind === 'unix') server.listen(addr.path, done);
    else server.listen(addr.port, addr.host, done);
  });
  if (addr.kind === 'unix') return addr;
  const bound = server.address() as net.AddressInfo;
  return { kind: 'tcp', host: addr.host, port: bound.port };
}

// A socket file left by a killed process blocks listen(); remove it, but never a regular file.
function removeStaleSocket(path: string): void {
  if (!existsSync(path)) return;
  if (lstatSync(path).isSocket()) unlinkSync(path);
}

/** connectTo - open a stream socket to an address; resolves once connected. */
export function connectTo(addr: IpcAddress, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = addr.kind === 'unix' ? net.connect(addr.path) : net.connect(addr.port, addr.host);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${formatAddress(addr)} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
  });
}
