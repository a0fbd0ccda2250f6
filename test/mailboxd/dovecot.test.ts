// Dovecot interop: a Maildir written by Dovecot's LDA is listed and read by mailboxd, and a
// Maildir written by mailboxd is read by Dovecot's POP3 server (both run standalone with a
// throwaway config; as root they run as nobody, the way Dovecot refuses to run as root).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { toolSkip } from '../helpers/tools.js';
import { testClient } from '../helpers/config.js';
import { type Harness, harness } from './helpers.js';

const LIBEXEC = '/usr/lib/dovecot';
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

function skipReason(): string | false {
  const tools = toolSkip('doveadm', ...(isRoot ? ['setpriv'] : []));
  if (tools) return tools;
  for (const bin of ['dovecot-lda', 'pop3', 'imap']) {
    if (!existsSync(path.join(LIBEXEC, bin))) {
      if (process.env.CI) throw new Error(`CI is missing ${LIBEXEC}/${bin}`);
      return `missing ${LIBEXEC}/${bin}`;
    }
  }
  return false;
}

/** dovecot - run a Dovecot program for `user` on the Maildir under DATA/mail/<user>. */
function dovecot(h: Harness, program: string, args: string[], user: string, input: Buffer | string): { status: number | null; out: Buffer; err: string } {
  const conf = path.join(h.dir, 'dovecot.conf');
  if (!existsSync(conf)) {
    const lines = [
      `base_dir = ${h.dir}/dovecot-run`,
      `state_dir = ${h.dir}/dovecot-state`,
      'log_path = /dev/stderr',
      `mail_location = maildir:${h.dir}/mail/%u`,
      'first_valid_uid = 0',
      'first_valid_gid = 0',
      'ssl = no',
      'protocols =',
      ...(isRoot ? [`mail_uid = ${NOBODY}`, `mail_gid = ${NOBODY}`] : []),
    ];
    writeFileSync(conf, lines.join('\n') + '\n');
  }
  // Dovecot runs as nobody: give it the folder (mailboxd, as root, can still use it).
  if (isRoot) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, h.dir]);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', USER: user, HOME: path.join(h.dir, 'home'), MAIL: `maildir:${h.dir}/mail/${user}` };
  const cmd = path.join(LIBEXEC, program);
  const full = isRoot ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, '-c', conf, ...args]] : [cmd, ['-c', conf, ...args]];
  const res = spawnSync(full[0] as string, full[1] as string[], { input, env, timeout: 30_000 });
  return { status: res.status, out: res.stdout, err: res.stderr.toString() };
}

describe('Dovecot interop', { skip: skipReason() }, () => {
  let h: Harness;
  before(async () => {
    h = await harness(['dove@example.com', 'fancy@example.com', 'uids@example.com']);
  });
  after(async () => h?.close());

  test('a Maildir written by Dovecot LDA is listed and read by mailboxd', async () => {
    const user = 'dove@example.com';
    const inputs = [
      'Return-Path: <a@remote.test>\r\nSubject: first\r\n\r\nhello 1\r\n',
      'Subject: second \u00e9\u00e8 8-bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\u00fcber caf\u00e9\r\n',
      'Subject: third\r\n\r\n' + 'line\r\n'.repeat(2000),
    ];
    for (const m of inputs) {
      const r = dovecot(h, 'dovecot-lda', ['-f', 'a@remote.test'], user, Buffer.from(m, 'utf8'));
      assert.equal(r.status, 0, `dovecot-lda failed: ${r.err}`);
    }
    const newDir = path.join(h.dir, 'mail', user, 'new');
    const names = readdirSync(newDir);
    assert.equal(names.length, 3);
    assert.ok(names.every((n) => /^\d+\.M\d+P\d+\.[^,]+,S=\d+,W=\d+$/.test(n)), `Dovecot names: ${names.join(' ')}`);

    const c = testClient(h.config, h.mailboxd.addresses.ipc!);
    try {
      const l = await c.requestList('list', [user]);
      assert.equal(l.items.length, 3);
      for (let i = 0; i < 3; i++) {
        const [n, size, uid] = l.items[i]!.params as [string, string, string];
        const file = names.find((f) => f.startsWith(uid + ','))!;
        assert.ok(file, `UID ${uid} is the base name of a Dovecot file`);
        const onDisk = readFileSync(path.join(newDir, file));
        assert.equal(Number(size), onDisk.length);
        const r = await c.requestRaw('retr', [user, n]);
        assert.ok(r.data!.equals(onDisk));
        // Dovecot's LDA stores with LF line ends; the arrival order is the delivery order.
        assert.equal(r.data!.toString('utf8'), inputs[i]!.replace(/\r\n/g, '\n'));
      }
      assert.equal((await c.request('dele', [user, '2'])).ok, true);
      assert.equal(readdirSync(newDir).length, 2);
      // Dovecot still reads the mailbox after our dele.
      const pop = dovecot(h, 'pop3', [], user, 'STAT\r\nQUIT\r\n');
      assert.match(pop.out.toString(), /\+OK 2 \d+/);
    } finally {
      c.close();
    }
  });

  test('a Maildir written by mailboxd is read by Dovecot POP3; UIDs survive its move to cur/', async () => {
    const user = 'fancy@example.com';
    const bodies = [
      Buffer.from('Return-Path: <s@remote.test>\r\nSubject: one\r\n\r\nbody one\r\n'),
      Buffer.from('Subject: two\r\n\r\nbody two, 8-bit: \u00e9\r\n', 'utf8'),
    ];
    const c = testClient(h.config, h.mailboxd.addresses.ipc!);
    try {
      for (const b of bodies) assert.equal((await c.store('store', [user, user, String(b.length)], b)).ok, true);
      const before = await c.requestList('list', [user]);
      const stored: Buffer[] = [];
      for (let i = 1; i <= 2; i++) stored.push((await c.requestRaw('retr', [user, String(i)])).data!);

      const pop = dovecot(h, 'pop3', [], user, 'LIST\r\nRETR 1\r\nRETR 2\r\nQUIT\r\n');
      const out = pop.out.toString('utf8');
      assert.equal(pop.status, 0, pop.err);
      const list = /\+OK 2 messages:\r\n1 (\d+)\r\n2 (\d+)\r\n\.\r\n/.exec(out);
      assert.ok(list, `Dovecot LIST: ${out}`);
      assert.equal(Number(list[1]), Number(before.items[0]!.params[1]));
      assert.equal(Number(list[2]), Number(before.items[1]!.params[1]));
      for (let i = 0; i < 2; i++) {
        const expected = stored[i]!.toString('utf8');
        assert.ok(out.includes(`\r\n${expected}.\r\n`), `Dovecot RETR ${i + 1} returns our bytes:\n${out}`);
      }
      assert.match(stored[0]!.toString(), /^Return-Path: <s@remote.test>\r\nDelivered-To: fancy@example.com\r\nSubject: one/);

      // Dovecot moved the messages to cur/; numbering by a new list and UIDs are unchanged.
      assert.equal(readdirSync(path.join(h.dir, 'mail', user, 'cur')).length, 2);
      const afterList = await c.requestList('list', [user]);
      assert.deepEqual(afterList.items.map((m) => m.params), before.items.map((m) => m.params));
      assert.ok((await c.requestRaw('retr', [user, '2'])).data!.equals(stored[1]!));
    } finally {
      c.close();
    }
  });

  test('Dovecot IMAP shows the UIDs, UIDVALIDITY and flags of our index, and we see its flags and UIDs', async () => {
    const user = 'uids@example.com';
    const c = h.client();
    for (const t of ['one', 'two', 'three']) {
      const b = Buffer.from(`Subject: ${t}\r\n\r\n${t}\r\n`);
      assert.equal((await c.store('store', [user, user, String(b.length)], b)).ok, true);
    }
    assert.equal((await c.request('expunge', [user, 'INBOX', '2'])).ok, true);
    assert.equal((await c.requestList('flags', [user, 'INBOX', '3', 'add', '\\Flagged $Work'])).reply.ok, true);
    const ours = await c.requestList('index', [user, 'INBOX']);
    const [, uidvalidity, uidnext] = ours.reply.params;
    assert.deepEqual(ours.items.map((i) => i.params[0]), ['1', '3']);

    const imap = dovecot(h, 'imap', [], user, 'a SELECT INBOX\r\nb UID FETCH 1:* (FLAGS)\r\nc UID STORE 1 +FLAGS (\\Seen)\r\nd LOGOUT\r\n');
    const out = imap.out.toString();
    assert.match(out, new RegExp(`\\[UIDVALIDITY ${uidvalidity}\\]`), out);
    assert.match(out, new RegExp(`\\[UIDNEXT ${uidnext}\\]`), out);
    const fetched = [...out.matchAll(/\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)/g)].map((m) => [m[1], m[2]!.split(' ').filter((f) => f !== '\\Recent').sort().join(' ')]);
    // The first FETCH line per UID answers `b` (the STORE of `c` may answer meanwhile).
    const firsts = fetched.filter((f, i) => fetched.findIndex((g) => g[0] === f[0]) === i);
    assert.deepEqual(firsts, [['1', ''], ['3', '$Work \\Flagged']]);

    // Dovecot's \Seen (a rename to :2,S) and a message its LDA delivers show up in our index.
    const lda = dovecot(h, 'dovecot-lda', ['-f', 'a@remote.test'], user, Buffer.from('Subject: four\r\n\r\nfour\r\n'));
    assert.equal(lda.status, 0, lda.err);
    const after = await c.requestList('index', [user, 'INBOX']);
    assert.equal(after.reply.params[1], uidvalidity);
    assert.deepEqual(after.items.map((i) => [i.params[0], i.params[2]]), [['1', '\\Seen'], ['3', '\\Flagged $Work'], [uidnext, '']]);
    const pop = await c.requestList('list', [user]);
    assert.equal(pop.items.length, 3);
  });
});
