// ConnectionLimiter - the client connection caps of a front-end server (smtpd, pop3d, imapd):
// a total cap and a per-IP cap, with an exempt list (Postfix's $mynetworks-style exception;
// loopback by default), addresses compared in normalizeIp's one form. Settings are read at
// each admission, so a reload applies to new connections at once.

import { normalizeIp } from './client-ip.js';

export interface LimiterSettings {
  max_connections: number;
  max_connections_per_ip: number;
  /** Client addresses the per-IP cap does not apply to. */
  connection_limit_exempt: readonly string[];
}

export type Admission = { ok: true; ip: string } | { ok: false; ip: string; reason: string };

export class ConnectionLimiter {
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private exemptFrom: readonly string[] | null = null;
  private exempt = new Set<string>();

  constructor(private readonly settings: () => LimiterSettings) {}

  /** admit - count a new connection from IP, or say why it is refused (nothing counted then). */
  admit(ip: string): Admission {
    const key = normalizeIp(ip);
    const s = this.settings();
    if (this.total >= s.max_connections) return { ok: false, ip: key, reason: 'too many connections' };
    const n = this.perIp.get(key) ?? 0;
    if (n >= s.max_connections_per_ip && !this.isExempt(key, s)) return { ok: false, ip: key, reason: `too many connections from ${key}` };
    this.total++;
    this.perIp.set(key, n + 1);
    return { ok: true, ip: key };
  }

  /** release - a connection admitted from IP went away. */
  release(ip: string): void {
    const key = normalizeIp(ip);
    this.total = Math.max(0, this.total - 1);
    const n = (this.perIp.get(key) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(key);
    else this.perIp.set(key, n);
  }

  get open(): number {
    return this.total;
  }

  private isExempt(key: string, s: LimiterSettings): boolean {
    if (this.exemptFrom !== s.connection_limit_exempt) {
      this.exemptFrom = s.connection_limit_exempt;
      this.exempt = new Set(s.connection_limit_exempt.map(normalizeIp));
    }
    return this.exempt.has(key);
  }
}
