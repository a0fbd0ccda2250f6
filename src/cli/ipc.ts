// `fmail ipc ADDRESS MESSAGE [PARAM...]` - send one request and print the reply: the admin's nc,
// with the encoding done right. `list` prints every line; `retr` writes the raw bytes to stdout;
// `store` sends standard input as the raw data. The IPC secret is presented on its own: --secret,
// else FMAIL_IPC_SECRET, else [ipc] secret of -c FILE, else DATA/ipc.secret (./data or
// $FMAIL_DATA), as every FancyMail client does.

import type { Command } from 'commander';

import { loadConfig } from '../config/load.js';
import { IpcClient, formatMessage, parseMessage, type Message } from '../ipc/index.js';
import { ipcSecret } from '../shared/ipc-secret.js';

/** toMessage - `name: a ; b` as one argument (decoded like a wire line), or name then params. */
export function toMessage(args: string[]): Message {
  if (args.length === 1) return parseMessage(args[0]!);
  return { name: args[0]!.toLowerCase(), params: args.slice(1) };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function show(name: string, params: string[]): void {
  process.stdout.write(formatMessage(name, params).replace(/\r\n$/, '\n'));
}

export function registerIpc(program: Command): void {
  program
    .command('ipc')
    .description("send one IPC request and print the reply, e.g. fmail ipc socket://127.0.0.1:14101 'pop: incoming'")
    .argument('<address>', 'socket://HOST:PORT or unix:///path')
    .argument('<message...>', "the whole message ('auth: alice@example.test ; secret') or its name then each parameter")
    .option('--secret <secret>', 'IPC shared secret (default: $FMAIL_IPC_SECRET, [ipc] secret, or DATA/ipc.secret)')
    .option('-c, --config <file>', 'configuration file whose secret / data folder to use')
    .option('--timeout <ms>', 'reply timeout in milliseconds', '10000')
    .action(async (address: string, args: string[], opts: { secret?: string; config?: string; timeout: string }) => {
      const msg = toMessage(args);
      const secret = opts.secret ?? ipcSecret(loadConfig(opts.config));
      const client = new IpcClient(address, { timeoutMs: Number(opts.timeout), secret: secret || undefined });
      try {
        let ok: boolean;
        if (msg.name === 'list') {
          const res = await client.requestList(msg.name, msg.params);
          show(res.reply.ok ? 'ok' : 'error', res.reply.params);
          for (const item of res.items) show(item.name, item.params);
          if (res.reply.ok) show('ok', []);
          ok = res.reply.ok;
        } else if (msg.name === 'retr') {
          const res = await client.requestStream(msg.name, msg.params);
          if (res.stream) {
            for await (const chunk of res.stream) process.stdout.write(chunk as Buffer);
          } else {
            show('error', res.reply.params);
          }
          ok = res.reply.ok;
        } else if (msg.name === 'store') {
          const reply = await client.store(msg.name, msg.params, await readStdin());
          show(reply.ok ? 'ok' : 'error', reply.params);
          ok = reply.ok;
        } else {
          const reply = await client.request(msg.name, msg.params);
          show(reply.ok ? 'ok' : 'error', reply.params);
          ok = reply.ok;
        }
        process.exitCode = ok ? 0 : 1;
      } finally {
        client.close();
      }
    });
}
