// Password schemes - hashing new passwords (Argon2id) and verifying the schemes Dovecot writes.
//
// Stored form: `{SCHEME}value`, as in a Dovecot passwd-file. Verified: ARGON2ID / ARGON2I
// (@node-rs/argon2, off the event loop in libuv's pool), BLF-CRYPT / `$2y$` bcrypt (bcryptjs
// async), SHA512-CRYPT / SHA256-CRYPT (unixcrypt, in a worker thread: a 5000-round crypt takes
// tens of milliseconds), CRYPT (by its `$id$` prefix) and PLAIN (compared as SHA-256 digests
// with timingSafeEqual). Every comparison is constant-time.

import { createHash, timingSafeEqual } from 'node:crypto';

import { Algorithm, hash as argonHash, verify as argonVerify } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';

import { cryptVerify } from './crypt-pool.js';

export interface Argon2Params {
  memoryKib: number;
  timeCost: number;
  parallelism: number;
}

/** hashPassword - a new `{ARGON2ID}$argon2id$...` value for the users file. */
export async function hashPassword(password: string, p: Argon2Params): Promise<string> {
  const h = await argonHash(password, {
    algorithm: Algorithm.Argon2id,
    memoryCost: p.memoryKib,
    timeCost: p.timeCost,
    parallelism: p.parallelism,
  });
  return `{ARGON2ID}${h}`;
}

/** schemeOf - the scheme of a stored value: explicit `{X}`, else guessed from a crypt prefix. */
export function schemeOf(stored: string): { scheme: string; value: string } {
  const m = /^\{([A-Za-z0-9.-]+)\}(.*)$/s.exec(stored);
  if (m) return { scheme: m[1]!.toUpperCase(), value: m[2]! };
  return { scheme: 'CRYPT', value: stored };
}

/** isSupportedScheme - whether verifyPassword can ever say yes to this stored value. */
export function isSupportedScheme(stored: string): boolean {
  return cryptKind(stored) !== null;
}

type Kind = 'argon2' | 'bcrypt' | 'shacrypt' | 'plain';

function cryptKind(stored: string): Kind | null {
  const { scheme, value } = schemeOf(stored);
  switch (scheme) {
    case 'ARGON2ID':
    case 'ARGON2I':
      return value.startsWith('$argon2') ? 'argon2' : null;
    case 'BLF-CRYPT':
      return /^\$2[abxy]\$/.test(value) ? 'bcrypt' : null;
    case 'SHA512-CRYPT':
      return value.startsWith('$6$') ? 'shacrypt' : null;
    case 'SHA256-CRYPT':
      return value.startsWith('$5$') ? 'shacrypt' : null;
    case 'PLAIN':
      return 'plain';
    case 'CRYPT':
      if (value.startsWith('$argon2')) return 'argon2';
      if (/^\$2[abxy]\$/.test(value)) return 'bcrypt';
      if (value.startsWith('$6$') || value.startsWith('$5$')) return 'shacrypt';
      return null; // DES and MD5 crypt: too weak to keep accepting.
    default:
      return null;
  }
}

/** verifyPassword - true when PASSWORD matches STORED; never throws on a bad hash (false). */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const kind = cryptKind(stored);
  const { value } = schemeOf(stored);
  try {
    switch (kind) {
      case 'argon2':
        return await argonVerify(value, password);
      case 'bcrypt':
        // bcryptjs only knows the $2a$/$2b$ spellings; $2y$ (PHP, Dovecot) is the same algorithm.
        return await bcrypt.compare(password, value.replace(/^\$2[xy]\$/, '$2b$'));
      case 'shacrypt':
        return await cryptVerify(password, value);
      case 'plain': {
        const a = createHash('sha256').update(value, 'utf8').digest();
        const b = createHash('sha256').update(password, 'utf8').digest();
        return timingSafeEqual(a, b);
      }
      default:
        return false;
    }
  } catch {
    return false;
  }
}
