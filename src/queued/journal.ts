// Journal - where queued keeps the bytes of messages it was handed over IPC (`put`): one
// append-only file per segment, DATA/queue/NAME/journal/NNNNNNNN, with group commit.
//
// Why: a message file of its own needs its own fdatasync (plus a folder fsync); on this
// machine that is 3-4 ms of disk each, so the queue's cost is one flush per message. Here every
// `put` that arrives while a flush runs waits for the next one, and that one job writes all of
// their records and fdatasyncs the segment once: N messages, one flush.
//
// Records (text header, then raw bytes):
//   P QID LENGTH CRC32HEX\n<LENGTH bytes>   a message (acknowledged only after its fdatasync)
//   D QID\n                                 done (not synced: lost by a crash = delivered again)
//   C\n                                     segment closed (written and synced at roll-over and
//                                           at a clean stop; a closed segment is trusted without
//                                           reading its data back)
// Recovery reads every segment in order: live = P without a later D. An unclosed segment (the
// one being written when the process died) has its CRCs checked and stops at the first torn
// record, which can only be one never acknowledged. Each start writes a new segment; a segment
// whose messages are all done is removed.
//
// The bytes of recent puts also stay in memory (up to MEMORY_BYTES, oldest dropped first), so
// `take` and `get` answer without a read. A consumer that asks for a file path (DESIGN.md `pop`
// answers PATH) gets cache/QID, written on that pop from memory or the journal (queue.ts).

import { closeSync, constants, fstatSync, mkdirSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

import { runIo } from '../shared/io-pool.js';
import { fsyncDir } from '../shared/durable.js';
import { isQid } from './names.js';

/** Segments roll over at this size. */
const SEGMENT_BYTES = 64 * 1024 * 1024;
/** A header line is never longer (P + qid + length + crc). */
const MAX_HEADER = 64;
/** read() takes this much at once: the header and, for most messages, all their bytes. */
const FIRST_READ = 64 * 1024;
/** Bytes of recent puts kept in memory for take/get (beyond: read back from the segment). */
const MEMORY_BYTES = 64 * 1024 * 1024;

// Where a live message is: segment number and the offset of its P record, packed into one
// number (a million recovered messages: one boxed number each instead of an object). Record
// offsets stay below 2^26 (a segment rolls over at 64 MiB; a bigger record starts a new one).
const OFF_SPAN = 2 ** 27;
const pack = (seg: number, recordOff: number): number => seg * OFF_SPAN + recordOff;
const segOf = (loc: number): number => Math.floor(loc / OFF_SPAN);
const offOf = (loc: number): number => loc % OFF_SPAN;

interface Segment {
  no: number;
  fd: number;
  size: number;
  /** Messages in it not done yet. */
  live: number;
  /** Records reserved in it and not written yet. */
  pending: number;
  /** Its folder entry is not known durable yet (its first flush fsyncs the folder). */
  fresh: boolean;
  /** Rolled over: gets its C record once everything in it is written and synced. */
  retired: boolean;
  sealed: boolean;
}

interface Waiting {
  seg: Segment;
  off: number;
  records: Uint8Array[];
  resolve(): void;
  reject(err: Error): void;
}

const noop = (): void => {};

export class Journal {
  private active: Segment | null = null;
  /** Open segments, by number. */
  private readonly segs = new Map<number, Segment>();
  private readonly locs = new Map<string, number>();
  /** Bytes of recent puts, oldest first (a Map keeps insertion order), and their total. */
  private readonly memory = new Map<string, Buffer>();
  private memoryBytes = 0;
  private waiting: Waiting[] = [];
  private flushing: Promise<void> | null = null;
  private nextNo: number;
  private readonly firstNo: number;
  private closed = false;

  private constructor(
    readonly dir: string,
    lastNo: number,
  ) {
    this.nextNo = lastNo + 1;
    this.firstNo = this.nextNo;
  }

  /** open - recover every segment under DIR; returns the journal and the live qids in order. */
  static open(dir: string, warn: (msg: string) => void): { journal: Journal; live: string[] } {
    mkdirSync(dir, { recursive: true });
    const nos = readdirSync(dir)
      .filter((f) => /^\d{8}$/.test(f))
      .map(Number)
      .sort((a, b) => a - b);
    const j = new Journal(dir, nos.length ? nos[nos.length - 1]! : 0);
    const order: string[] = [];
    for (const no of nos) j.recoverSegment(no, order, warn);
    for (const seg of [...j.segs.values()]) j.release(seg);
    return { journal: j, live: order.filter((q) => j.locs.has(q)) };
  }

  has(qid: string): boolean {
    return this.locs.has(qid);
  }

  /** recovered - QID was journaled before this start (its cache copy is not trusted). */
  recovered(qid: string): boolean {
    const loc = this.locs.get(qid);
    return loc !== undefined && segOf(loc) < this.firstNo;
  }

  get size(): number {
    return this.locs.size;
  }

  /** append - journal QID's bytes; resolves once they are on disk. */
  append(qid: string, data: Buffer[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal closed'));
    const len = data.reduce((n, d) => n + d.length, 0);
    let crc = 0;
    for (const d of data) crc = crc32(d, crc);
    const header = Buffer.from(`P ${qid} ${len} ${(crc >>> 0).toString(16).padStart(8, '0')}\n`, 'latin1');
    const seg = this.segment(header.length + len);
    const off = this.reserve(seg, header.length + len);
    seg.live++;
    this.locs.set(qid, pack(seg.no, off));
    return new Promise<void>((resolve, reject) => {
      this.enqueue({
        seg,
        off,
        records: [header, ...data],
        resolve: () => {
          this.remember(qid, data, len);
          resolve();
        },
        reject: (err) => {
          this.forget(qid);
          reject(err);
        },
      });
    });
  }

  /** done - QID is finished: a D record (not synced), and its segment goes once all are done. */
  done(qid: string): void {
    if (!this.forget(qid) || this.closed) return;
    const rec = Buffer.from(`D ${qid}\n`, 'latin1');
    const seg = this.segment(rec.length);
    const off = seg.size;
    seg.size += rec.length;
    // Written here and now: some bytes into the page cache cost less than a hop to an I/O
    // worker and back (two thread wake-ups). The active segment is never closed under it; the
    // records before it that are still on their way are written by their flush, and one
    // acknowledged after it only once that flush is done.
    try {
      writeSync(seg.fd, rec, 0, rec.length, off);
    } catch {
      // As if lost by a crash: delivered again (mailboxd finds it a duplicate).
    }
  }

  /** read - QID's bytes: from memory if still there, else from its segment. */
  async read(qid: string): Promise<Buffer> {
    const kept = this.memory.get(qid);
    if (kept && this.locs.has(qid)) return kept;
    const loc = this.locs.get(qid);
    const seg = loc === undefined ? undefined : this.segs.get(segOf(loc));
    if (loc === undefined || !seg) throw new Error(`not in the journal: ${qid}`);
    // The P record's header says how long the message is; one read takes it and, for most
    // messages, the bytes too (a second read only for what lies beyond the first).
    const first = (await runIo({ op: 'pread', fd: seg.fd, off: offOf(loc), len: FIRST_READ })).data!;
    const head = Buffer.from(first.buffer, first.byteOffset, first.byteLength);
    const nl = head.subarray(0, MAX_HEADER).indexOf(10);
    const m = nl > 0 ? /^P ([0-9A-Z]{15}) (\d{1,12}) [0-9a-f]{8}$/.exec(head.toString('latin1', 0, nl)) : null;
    if (!m || m[1] !== qid) throw new Error(`journal segment ${seg.no}: no record of ${qid} where expected`);
    const len = Number(m[2]);
    const start = nl + 1;
    if (start + len <= head.length) return head.subarray(start, start + len);
    const rest = (await runIo({ op: 'pread', fd: seg.fd, off: offOf(loc) + head.length, len: start + len - head.length })).data!;
    const body = Buffer.concat([head.subarray(start), rest]);
    if (body.length !== len) throw new Error(`journal segment ${seg.no} is short`);
    return body;
  }

  /** close - write what is pending, mark the active segment closed (C), close the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const seg = this.active;
    if (seg) {
      this.active = null;
      seg.retired = true;
    }
    while (this.flushing) await this.flushing;
    this.seal([...this.segs.values()]);
    this.flushing = this.flush();
    await this.flushing;
    for (const s of this.segs.values()) closeSync(s.fd);
    this.segs.clear();
  }

  private segPath(no: number): string {
    return path.join(this.dir, String(no).padStart(8, '0'));
  }

  private reserve(seg: Segment, n: number): number {
    const off = seg.size;
    seg.size += n;
    seg.pending++;
    return off;
  }

  private enqueue(w: Waiting): void {
    this.waiting.push(w);
    if (!this.flushing) this.flushing = this.flush();
  }

  // remember - keep a put's bytes in memory (one buffer), dropping the oldest beyond MEMORY_BYTES.
  private remember(qid: string, data: Buffer[], len: number): void {
    if (len > MEMORY_BYTES / 8 || !this.locs.has(qid)) return;
    // One buffer of its own: a slice of a bigger read buffer would keep all of it alive.
    const one = data.length === 1 && data[0]!.buffer.byteLength <= len + 4096 ? data[0]! : Buffer.concat(data, len);
    this.memory.set(qid, one);
    this.memoryBytes += len;
    for (const [old, b] of this.memory) {
      if (this.memoryBytes <= MEMORY_BYTES) break;
      this.memory.delete(old);
      this.memoryBytes -= b.length;
    }
  }

  // forget - drop QID's location and count it out of its segment; true if it was live.
  private forget(qid: string): boolean {
    const kept = this.memory.get(qid);
    if (kept) {
      this.memory.delete(qid);
      this.memoryBytes -= kept.length;
    }
    const loc = this.locs.get(qid);
    if (loc === undefined) return false;
    this.locs.delete(qid);
    const seg = this.segs.get(segOf(loc));
    if (seg) {
      seg.live--;
      this.release(seg);
    }
    return true;
  }

  // release - a segment that is not written to any more and holds nothing live goes away.
  private release(seg: Segment): void {
    if (seg === this.active || seg.live > 0 || seg.pending > 0 || !this.segs.has(seg.no)) return;
    this.segs.delete(seg.no);
    closeSync(seg.fd);
    // No folder fsync: a segment a crash brings back only has done messages or D records.
    void runIo({ op: 'unlink', path: this.segPath(seg.no), quiet: true }).catch(noop);
  }

  // segment - the active segment, rolled over first if NEED bytes would overfill it.
  private segment(need: number): Segment {
    const cur = this.active;
    if (cur && cur.size + need <= SEGMENT_BYTES) return cur;
    if (cur) cur.retired = true;
    const no = this.nextNo++;
    const fd = openSync(this.segPath(no), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    const seg: Segment = { no, fd, size: 0, live: 0, pending: 0, fresh: true, retired: false, sealed: false };
    this.segs.set(no, seg);
    this.active = seg;
    if (cur) this.release(cur);
    return seg;
  }

  // flush - one job for everything waiting: write the records, then one fdatasync per segment
  // touched. Puts arriving meanwhile wait for the next round.
  private async flush(): Promise<void> {
    while (this.waiting.length > 0) {
      // One turn of the event loop first: puts whose bytes already arrived on other connections
      // are read in it and join this flush (a few microseconds; at 20 sessions this shared the
      // flush among more messages).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const batch = this.waiting.splice(0);
      const synced = [...new Set(batch.map((w) => w.seg))];
      try {
        await runIo({
          op: 'journal',
          writes: batch.map((w) => ({ fd: w.seg.fd, off: w.off, data: w.records })),
          files: [],
          syncFds: synced.map((s) => s.fd),
        }, true);
        const fresh = synced.filter((s) => s.fresh);
        if (fresh.length > 0) {
          await fsyncDir(this.dir);
          for (const s of fresh) s.fresh = false;
        }
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err as Error);
      }
      for (const w of batch) w.seg.pending--;
      this.seal(new Set(batch.map((w) => w.seg)));
    }
    this.flushing = null;
  }

  // seal - a retired segment whose records are all written and synced gets its C record, in a
  // later job than they (so a C on disk means everything before it is whole).
  private seal(segs: Iterable<Segment>): void {
    for (const s of segs) {
      if (s.retired && !s.sealed && s.pending === 0 && s.live > 0) {
        s.sealed = true;
        this.waiting.push({ seg: s, off: this.reserve(s, 2), records: [Buffer.from('C\n')], resolve: noop, reject: noop });
      }
      this.release(s);
    }
  }

  private recoverSegment(no: number, order: string[], warn: (msg: string) => void): void {
    const fd = openSync(this.segPath(no), constants.O_RDWR);
    const size = fstatSync(fd).size;
    const seg: Segment = { no, fd, size, live: 0, pending: 0, fresh: false, retired: true, sealed: true };
    this.segs.set(no, seg);
    // Closed segments end in "C\n": their records need no CRC check.
    const tail = Buffer.alloc(2);
    const closed = size >= 2 && readSync(fd, tail, 0, 2, size - 2) === 2 && tail.toString('latin1') === 'C\n';
    const head = Buffer.alloc(MAX_HEADER);
    let pos = 0;
    while (pos < size) {
      const n = readSync(fd, head, 0, MAX_HEADER, pos);
      const nl = head.subarray(0, n).indexOf(10);
      const line = nl > 0 ? head.toString('latin1', 0, nl) : '';
      const m = /^(?:P ([0-9A-Z]{15}) (\d{1,12}) ([0-9a-f]{8})|D ([0-9A-Z]{15})|C)$/.exec(line);
      if (!m) {
        if (closed) warn(`journal ${no}: unreadable record at ${pos}; the rest of the segment is skipped`);
        break;
      }
      const next = pos + nl + 1;
      if (line === 'C') {
        pos = next;
        continue;
      }
      if (m[4]) {
        const loc = this.locs.get(m[4]);
        if (loc !== undefined) {
          this.locs.delete(m[4]);
          const s = this.segs.get(segOf(loc));
          if (s) s.live--;
        }
        pos = next;
        continue;
      }
      // A fresh 15-character string, not the match (a slice would keep the whole header line
      // alive: for a million recovered messages, tens of MB of RSS).
      const qid = head.toString('latin1', 2, 17);
      const len = Number(m[2]);
      if (!isQid(qid) || next + len > size) break;
      if (!closed) {
        const data = Buffer.alloc(len);
        if (readSync(fd, data, 0, len, next) !== len || (crc32(data) >>> 0).toString(16).padStart(8, '0') !== m[3]) break;
      }
      if (!this.locs.has(qid)) {
        seg.live++;
        order.push(qid);
      }
      this.locs.set(qid, pack(no, pos));
      pos = next + len;
    }
  }
}
