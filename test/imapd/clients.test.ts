// Real IMAP clients against imapd on the real authd and mailboxd: Python's imaplib (plain,
// STARTTLS, IMAPS), imapflow (fetch, flags, IDLE), curl imap://, and mbsync doing a two-way
// sync of 1,000 messages with flags into a local Maildir and back - after which a second sync
// changes nothing. Bodies are compared byte for byte with what mailboxd holds.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ImapFlow } from 'imapflow';

import type { IpcClient } from '../../src/ipc/index.js';
import { ipcClient } from '../../src/shared/ipc-setup.js';
import { tempDir } from '../helpers/tmp.js';
import { toolSkip } from '../helpers/tools.js';
import { ImapTestClient } from './imap-client.js';
import { ALICE, ALICE_PW, BOB, type Stack, startStack } from './stack.js';

function run(cmd: string, args: string[], input = ''): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.end(input);
  });
}

/** within - the promise, or a failure after ms (no test waits forever). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** The awkward cases: 8-bit text, a long line, MIME parts, no final line break. */
const SAMPLES = [
  'From: a@remote.test\r\nSubject: one\r\n\r\nhello\r\n',
  'From: b@remote.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße aus Köln ✓\r\n' + 'x'.repeat(998) + '\r\nend.',
  'From: c@remote.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n',
];

describe('real IMAP clients', { skip: toolSkip('python3', 'curl', 'mbsync') }, () => {
  let s: Stack;
  let mailboxd: IpcClient;
  /** What mailboxd holds for INBOX UID n: the bytes every client must see. */
  const stored = async (user: string, folder: string, uid: number): Promise<Buffer> => {
    const r = await mailboxd.requestRaw('fetch', [user, folder, String(uid)]);
    assert.ok(r.reply.ok, r.reply.params.join(' '));
    return r.data!;
  };

  before(async () => {
    s = await startStack();
    mailboxd = ipcClient(s.config, 'mailboxd');
    for (const m of SAMPLES) await s.deliver(ALICE, m);
    await s.deliver(BOB, 'Subject: for bob only\r\n\r\nbob secret\r\n');
  });
  after(async () => {
    mailboxd.close();
    await s.close();
  });

  test('Python imaplib: plain, STARTTLS and IMAPS; byte-exact bodies, search, store, append', async () => {
    const script = `
import imaplib, ssl, sys, json
port, sport, user, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
out = {}
M = imaplib.IMAP4('127.0.0.1', port)
M.starttls(ssl_context=ctx)
M.login(user, pw)
typ, d = M.select('INBOX'); out['exists'] = int(d[0])
bodies = []
for i in range(1, out['exists'] + 1):
    typ, d = M.uid('FETCH', str(i), '(BODY.PEEK[])'); bodies.append(d[0][1].hex())
out['bodies'] = bodies
out['search'] = M.search(None, 'SUBJECT', 'parts')[1][0].decode()
out['store'] = M.store('1', '+FLAGS', '(\\\\Flagged)')[1][0].decode()
out['append'] = M.append('Sent', '(\\\\Seen)', None, b'Subject: sent by imaplib\\r\\n\\r\\nhi\\r\\n')[1][0].decode()
out['status'] = M.status('Sent', '(MESSAGES UNSEEN)')[1][0].decode()
M.logout()
S = imaplib.IMAP4_SSL('127.0.0.1', sport, ssl_context=ctx)
S.login(user, pw); out['ssl'] = S.select('INBOX', readonly=True)[0]; S.logout()
print(json.dumps(out))
`;
    const r = await run('python3', ['-c', script, String(s.port), String(s.imapsPort), ALICE, ALICE_PW]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.toString()) as Record<string, unknown>;
    assert.equal(out.exists, SAMPLES.length);
    const bodies = out.bodies as string[];
    for (let i = 0; i < SAMPLES.length; i++) assert.equal(bodies[i], (await stored(ALICE, 'INBOX', i + 1)).toString('hex'), `message ${i + 1}`);
    assert.equal(out.search, '3');
    assert.match(out.store as string, /FLAGS \(\\Flagged( \\Recent)?\)/);
    assert.match(out.append as string, /APPENDUID [0-9]+ 1/);
    assert.equal(out.status, '"Sent" (MESSAGES 1 UNSEEN 0)');
    assert.equal(out.ssl, 'OK');
  });

  test('curl imap://: a message by UID byte-exact, a section, the folder list, a search', async () => {
    const url = `imap://127.0.0.1:${s.port}`;
    const user = ['--user', `${ALICE}:${ALICE_PW}`];
    const one = await run('curl', ['-s', ...user, `${url}/INBOX;UID=2`]);
    assert.equal(one.status, 0, one.stderr);
    assert.equal(one.stdout.toString('hex'), (await stored(ALICE, 'INBOX', 2)).toString('hex'));
    const part = await run('curl', ['-s', ...user, `${url}/INBOX;UID=3;SECTION=1`]);
    assert.equal(part.stdout.toString(), 'part one');
    const list = await run('curl', ['-s', ...user, `${url}/`]);
    assert.match(list.stdout.toString(), /^\* LIST \(\\HasNoChildren \\Sent\) "\." "Sent"\r$/m);
    const search = await run('curl', ['-s', ...user, `${url}/INBOX?SUBJECT%20one`]);
    assert.equal(search.stdout.toString().trim(), '* SEARCH 1');
  });

  test('imapflow: list, fetch with source and structure, flags, move, IDLE reports a delivery within 1 s', async () => {
    const c = new ImapFlow({ host: '127.0.0.1', port: s.port, secure: false, auth: { user: ALICE, pass: ALICE_PW }, logger: false, tls: { rejectUnauthorized: false } });
    await c.connect();
    try {
      const folders = (await c.list()).map((f) => `${f.path}${f.specialUse ? ' ' + f.specialUse : ''}`);
      for (const f of ['INBOX \\Inbox', 'Sent \\Sent', 'Drafts \\Drafts', 'Trash \\Trash', 'Junk \\Junk', 'Archive \\Archive']) assert.ok(folders.includes(f), f);
      const lock = await c.getMailboxLock('INBOX');
      try {
        const msgs = [];
        for await (const m of c.fetch('1:*', { uid: true, flags: true, source: true, bodyStructure: true, envelope: true })) msgs.push(m);
        assert.equal(msgs.length, SAMPLES.length);
        for (const m of msgs) assert.equal(m.source!.toString('hex'), (await stored(ALICE, 'INBOX', m.uid)).toString('hex'));
        assert.equal(msgs[2]!.bodyStructure!.childNodes!.length, 2);
        assert.equal(msgs[1]!.envelope!.subject, 'Grüße');
        assert.ok(await c.messageFlagsAdd({ uid: '3' }, ['$Label1'], { uid: true }));
        const moved = await c.messageMove('3', 'Archive', { uid: true });
        assert.ok(moved && moved.uidMap?.get(3));
      } finally {
        lock.release();
      }
      // IDLE: imapflow idles once the mailbox is open and no lock is held.
      await c.mailboxOpen('INBOX');
      const exists = new Promise<number>((resolve) => c.once('exists', (e: { count: number }) => resolve(e.count)));
      void c.idle();
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      await s.deliver(ALICE, 'Subject: while idling\r\n\r\nping\r\n');
      const count = await within(exists, 5000, 'an EXISTS while idling');
      assert.ok(Date.now() - t0 < 1000, `IDLE reported in ${Date.now() - t0} ms`);
      assert.equal(count, SAMPLES.length);
    } finally {
      await c.logout();
    }
  });

  test('mailbox isolation with the real mailboxd: no name trick reaches bob', async () => {
    const c = await ImapTestClient.connect(s.port);
    await c.ok(`LOGIN ${ALICE} "${ALICE_PW}"`);
    for (const name of ['../bob@example.test', '~bob', '"#shared.bob"', '"/bob"', '"..%2Fbob"', '".bob"', '"INBOX.."', '"Trash/../../bob@example.test"']) {
      const r = await c.command(`SELECT ${name}`);
      assert.match(r.done, /NO|BAD/, name);
      const a = await c.command(`APPEND ${name} {1+}\r\nx`);
      assert.match(a.done, /NO|BAD/, name);
    }
    const all = await c.ok('LIST "" *');
    assert.ok(!all.untagged.join('\n').includes('bob'));
    await c.ok('SELECT INBOX');
    const hit = await c.ok('SEARCH TEXT "bob secret"');
    assert.equal(hit.untagged[0], '* SEARCH');
    c.close();
  });
});

describe('mbsync two-way sync', { skip: toolSkip('mbsync') }, () => {
  const COUNT = 1000;
  let s: Stack;
  const tmp = tempDir('fmail-mbsync-');
  const local = path.join(tmp.dir, 'local');
  const rc = path.join(tmp.dir, 'mbsyncrc');

  before(async () => {
    s = await startStack();
    for (let i = 1; i <= COUNT; i++) await s.deliver(ALICE, `From: sender${i}@remote.test\r\nSubject: sync ${i}\r\nMessage-ID: <sync${i}@remote.test>\r\n\r\nbody of ${i}\r\n`);
    mkdirSync(local, { recursive: true });
    writeFileSync(
      rc,
      [
        'IMAPAccount a',
        'Host 127.0.0.1',
        `Port ${s.port}`,
        `User ${ALICE}`,
        `Pass "${ALICE_PW}"`,
        'SSLType None',
        'AuthMechs LOGIN',
        '',
        'IMAPStore remote',
        'Account a',
        '',
        'MaildirStore near',
        `Path ${local}/`,
        `Inbox ${local}/INBOX`,
        'SubFolders Verbatim',
        '',
        'Channel c',
        'Far :remote:',
        'Near :near:',
        'Patterns *',
        'Create Both',
        'Expunge Both',
        'SyncState *',
        'Sync All',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  const mbsync = async (): Promise<string> => {
    const r = await run('mbsync', ['-Dn', '-c', rc, '-a']);
    assert.equal(r.status, 0, r.stderr + r.stdout.toString().slice(-2000));
    return r.stdout.toString() + r.stderr;
  };
  const files = (box: string): string[] => ['new', 'cur'].flatMap((d) => readdirSync(path.join(local, box, d)).map((f) => `${d}/${f}`)).sort();
  const serverFlags = async (): Promise<string[]> => {
    const c = await ImapTestClient.connect(s.port);
    await c.ok(`LOGIN ${ALICE} "${ALICE_PW}"`);
    await c.ok('EXAMINE INBOX');
    const r = await c.ok('UID FETCH 1:* (FLAGS)');
    c.close();
    return r.untagged;
  };

  test('full sync down, local changes up, then a second sync changes nothing', async () => {
    // Some flags on the server first.
    const c = await ImapTestClient.connect(s.port);
    await c.ok(`LOGIN ${ALICE} "${ALICE_PW}"`);
    await c.ok('SELECT INBOX');
    await c.ok('STORE 1:50 +FLAGS.SILENT (\\Seen)');
    await c.ok('STORE 10:19 +FLAGS.SILENT (\\Flagged)');
    c.close();

    await mbsync();
    const down = files('INBOX');
    assert.equal(down.length, COUNT);
    assert.equal(down.filter((f) => /:2,[A-Z]*S/.test(f)).length, 50);
    assert.equal(down.filter((f) => /:2,[A-Z]*F/.test(f)).length, 10);
    for (const box of ['Sent', 'Drafts', 'Trash', 'Junk', 'Archive']) assert.deepEqual(files(box), [], box);
    // Every message arrived whole: its own subject and body, once (mbsync stores LF line ends).
    const bodies = new Set(down.map((f) => /Subject: (sync \d+)\r?\n[\s\S]*\r?\n\r?\nbody of (\d+)\r?\n$/.exec(readFileSync(path.join(local, 'INBOX', f), 'latin1'))).map((m) => (m && m[1] === `sync ${m[2]}` ? m[1] : 'bad')));
    assert.equal(bodies.size, COUNT);
    assert.ok(!bodies.has('bad'));

    // Local changes: flag one, mark one deleted (trashed), add a new one.
    const inbox = path.join(local, 'INBOX');
    const seen = down.find((f) => f.startsWith('cur/') && /:2,S$/.test(f))!;
    renameSync(path.join(inbox, seen), path.join(inbox, seen.replace(/:2,S$/, ':2,FS')));
    const other = down.filter((f) => f.startsWith('cur/') && /:2,S$/.test(f))[1]!;
    renameSync(path.join(inbox, other), path.join(inbox, other.replace(/:2,S$/, ':2,ST')));
    writeFileSync(path.join(inbox, 'new', '1700000000.local.test'), 'From: me@local.test\r\nSubject: written offline\r\n\r\nlocal\r\n');
    await mbsync();
    const flags = await serverFlags();
    assert.equal(flags.length, COUNT, 'one appended, one expunged');
    assert.equal(flags.filter((l) => l.includes('\\Flagged')).length, 11);
    assert.ok(flags.some((l) => new RegExp(`UID ${COUNT + 1} FLAGS`).test(l)), 'the local message was appended');

    // The second sync: nothing to do on either side.
    const before = files('INBOX');
    const log = await mbsync();
    const sent = log.split('\n').filter((l) => l.startsWith('>>> '));
    assert.ok(!sent.some((l) => /APPEND|STORE|EXPUNGE|BODY/.test(l)), sent.join('\n'));
    assert.deepEqual(files('INBOX'), before);
    assert.deepEqual(await serverFlags(), flags);
  });
});
