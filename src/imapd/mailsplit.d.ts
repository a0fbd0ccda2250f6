// The part of mailsplit's (untyped) API imapd uses.
declare module 'mailsplit' {
  import { Transform } from 'node:stream';

  export interface MimeNode {
    type: 'node';
    root: boolean;
    parentNode: MimeNode | false;
    multipart: string | false;
    contentType: string | false;
    _headerlen: number;
    _boundary: Buffer | false;
  }

  export type SplitterChunk = MimeNode | { type: 'body' | 'data'; node: MimeNode; value: Buffer };

  export class Splitter extends Transform {
    constructor(config?: { ignoreEmbedded?: boolean; maxHeadSize?: number; maxChildNodes?: number });
    /** 1: "--boundary" line, 2: "--boundary--" line, false/0: neither (an instance may override it). */
    compareBoundary(line: Buffer, startpos: number, boundary: Buffer): number | false;
  }

  export class Headers {
    constructor(raw: Buffer | string);
    getList(): Array<{ key: string; line: string }>;
  }
}
