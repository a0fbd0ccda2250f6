// The part of utf7's (untyped) API imapd uses: IMAP's modified UTF-7.
declare module 'utf7' {
  const utf7: { imap: { encode(s: string): string; decode(s: string): string } };
  export default utf7;
}
