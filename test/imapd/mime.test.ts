// FETCH rendering: BODYSTRUCTURE, ENVELOPE, sections and partials, on messages built by hand.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseFetchItems, renderFetch } from '../../src/imapd/fetch.js';
import { bodyStructure, envelope, parseSection, parseStructure, sectionBytes } from '../../src/imapd/mime.js';
import { ParseError, tokenize } from '../../src/imapd/parser.js';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\n/g, '\r\n'));

const NESTED = crlf(`From: "Bob B." <bob@example.net>
To: alice@example.test, Team: carol@example.test, dave@example.test;
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
Date: Wed, 2 Dec 2026 06:00:00 +0000
Message-ID: <nested@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

plain body
--inner
Content-Type: text/html; charset=utf-8

<p>html</p>
--inner--

--outer
Content-Type: message/rfc822

From: carol@example.test
Subject: inner

inner text
--outer
Content-Type: application/pdf; name="a.pdf"
Content-Disposition: attachment; filename="a.pdf"
Content-Transfer-Encoding: base64

JVBERi0=
--outer--
`);

describe('imapd MIME structure', () => {
  it('finds every part with byte-exact sections', async () => {
    const root = await parseStructure(NESTED);
    const s = (spec: string): string => sectionBytes(NESTED, root, parseSection(spec)).toString();
    assert.equal(s('1.1'), 'plain body');
    assert.equal(s('1.2'), '<p>html</p>');
    assert.equal(s('1.2.MIME'), 'Content-Type: text/html; charset=utf-8\r\n\r\n');
    assert.equal(s('2.HEADER'), 'From: carol@example.test\r\nSubject: inner\r\n\r\n');
    assert.equal(s('2.TEXT'), 'inner text');
    assert.equal(s('2.1'), 'inner text');
    assert.equal(s('3'), 'JVBERi0=');
    assert.equal(s('HEADER.FIELDS (subject date)'), 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Wed, 2 Dec 2026 06:00:00 +0000\r\n\r\n');
    assert.ok(s('HEADER.FIELDS.NOT (subject)').startsWith('From:'));
    assert.ok(!s('HEADER.FIELDS.NOT (subject)').includes('Subject'));
    assert.equal(s('9'), '');
    assert.equal(s(''), NESTED.toString());
  });

  it('renders BODYSTRUCTURE with sizes, lines (line breaks: a part\'s last CRLF is the boundary\'s), nested message and dispositions', async () => {
    const root = await parseStructure(NESTED);
    const bs = bodyStructure(NESTED, root, true);
    assert.match(bs, /^\(\(\("text" "plain" \("charset" "utf-8"\) NIL NIL "7bit" 10 0 NIL NIL NIL NIL\)\("text" "html" \("charset" "utf-8"\) NIL NIL "7bit" 11 0 NIL NIL NIL NIL\) "alternative" \("boundary" "inner"\) NIL NIL NIL\)/);
    assert.match(bs, /\("message" "rfc822" NIL NIL NIL "7bit" 54 \(NIL "inner" \(\(NIL NIL "carol" "example.test"\)\)/);
    assert.match(bs, /\("application" "pdf" \("name" "a.pdf"\) NIL NIL "base64" 8 NIL \("attachment" \("filename" "a.pdf"\)\) NIL NIL\) "mixed" \("boundary" "outer"\) NIL NIL NIL\)$/);
    // BODY has no extension data.
    assert.doesNotMatch(bodyStructure(NESTED, root, false), /"boundary"/);
  });

  it('takes delimiters with transport padding; digest parts default to message/rfc822', async () => {
    // imaptest's fetch-body-message-rfc822-mime: "--foo " lines, parts without Content-Type.
    const raw = crlf('Content-Type: multipart/digest; boundary="foo"\n\npre\n--foo \t\n\nFrom: m1@example.com\nSubject: m1\n\nm1 body\n--foo\nX-Mime: m2\n\nSubject: m2\n\nm2 body\n--foo-- \nepilogue\n');
    const root = await parseStructure(raw);
    const s = (spec: string): string => sectionBytes(raw, root, parseSection(spec)).toString();
    assert.equal(s('1'), 'From: m1@example.com\r\nSubject: m1\r\n\r\nm1 body');
    assert.equal(s('1.MIME'), '\r\n');
    assert.equal(s('1.HEADER'), 'From: m1@example.com\r\nSubject: m1\r\n\r\n');
    assert.equal(s('1.TEXT'), 'm1 body');
    assert.equal(s('2.MIME'), 'X-Mime: m2\r\n\r\n');
    assert.equal(s('2.TEXT'), 'm2 body');
    assert.match(bodyStructure(raw, root, false), /^\(\("message" "rfc822" NIL NIL NIL "7bit" 44 \(NIL "m1"/);
  });

  it('a message without MIME headers is one text/plain us-ascii part', async () => {
    const raw = crlf('Subject: x\n\nline 1\nline 2\n');
    const bs = bodyStructure(raw, await parseStructure(raw), true);
    assert.equal(bs, '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 2 NIL NIL NIL NIL)');
  });

  it('renders ENVELOPE with groups, raw encoded words and defaults for sender/reply-to', () => {
    const env = envelope(NESTED.subarray(0, NESTED.indexOf('\r\n\r\n') + 4));
    assert.equal(
      env,
      '("Wed, 2 Dec 2026 06:00:00 +0000" "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" (("Bob B." NIL "bob" "example.net")) (("Bob B." NIL "bob" "example.net")) (("Bob B." NIL "bob" "example.net")) ((NIL NIL "alice" "example.test")(NIL NIL "Team" NIL)(NIL NIL "carol" "example.test")(NIL NIL "dave" "example.test")(NIL NIL NIL NIL)) NIL NIL NIL "<nested@example.net>")',
    );
  });

  it('ENVELOPE keeps source routes as the adl and drops comment-only group members', () => {
    // imaptest's fetch-envelope, messages 4 and 6.
    const env = envelope(crlf('From: <@route:user@domain>\nCc: group:;, group2: (foo) ;\n\n'));
    assert.equal(
      env,
      '(NIL NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) NIL ((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)',
    );
  });

  it('refuses bad sections', () => {
    for (const bad of ['0', 'HEADER.FIELDS', 'MIME', 'TEXT.1', 'FOO', '1.HEADER.FIELDS ()']) assert.throws(() => parseSection(bad), ParseError, bad);
  });
});

describe('imapd FETCH rendering', () => {
  const meta = { uid: 7, flags: ['\\Seen'], modseq: 12, size: NESTED.length, internalDate: Date.UTC(2026, 11, 2, 6, 0, 0) };

  it('renders items in order, literals as raw pieces, UID first for UID FETCH', async () => {
    const req = parseFetchItems(tokenize(['(FLAGS BODY.PEEK[1.1]<2.3> INTERNALDATE)'])[0]!);
    assert.equal(req.setsSeen, false);
    const pieces = renderFetch(req, { seq: 3, meta, raw: NESTED, structure: await parseStructure(NESTED) }, { uid: true, modseq: true });
    const text = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))).toString();
    assert.equal(text, '* 3 FETCH (UID 7 FLAGS (\\Seen) BODY[1.1]<2> {3}\r\nain INTERNALDATE "02-Dec-2026 06:00:00 +0000" MODSEQ (12))\r\n');
  });

  it('knows the macros and which items set \\Seen', () => {
    assert.deepEqual(parseFetchItems({ t: 'atom', v: 'FAST' }).items.map((i) => i.kind), ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE']);
    assert.equal(parseFetchItems({ t: 'atom', v: 'BODY[]' }).setsSeen, true);
    assert.equal(parseFetchItems({ t: 'atom', v: 'RFC822.HEADER' }).setsSeen, false);
    assert.throws(() => parseFetchItems({ t: 'atom', v: 'BODY[]<1.0>' }), ParseError);
    assert.throws(() => parseFetchItems({ t: 'atom', v: 'NONSENSE' }), ParseError);
  });
});
