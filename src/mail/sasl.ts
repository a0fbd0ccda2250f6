// SASL PLAIN (RFC 4616) for POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE: decode, check the shape, nothing more.

export interface PlainCredentials {
  authzid: string;
  authcid: string;
  password: string;
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** decodePlain - `authzid NUL authcid NUL password` from base64, or null if malformed. */
export function decodePlain(b64: string): PlainCredentials | null {
  if (b64.length % 4 !== 0 || !B64_RE.test(b64)) return null;
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const parts = text.split('\0');
  if (parts.length !== 3) return null;
  const [authzid, authcid, password] = parts as [string, string, string];
  if (!authcid || !password) return null;
  // Logging in as someone else (a proxy authorization) is not offered.
  if (authzid && authzid !== authcid) return null;
  return { authzid, authcid, password };
}
