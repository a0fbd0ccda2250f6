// limits - the connection counter shared by all listeners: a total cap and a per-IP cap
// (with Postfix-style exceptions, loopback by default), so one client cannot take every slot.

import type { SmtpdConfig } from './config.js';

export class ConnectionLimits {
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private readonly exempt: Set<string>;

  constructor(private readonly cfg: SmtpdConfig) {
    this.exempt = new Set(cfg.connection_limit_exempt.map(normalizeIp));
  }

  /** admit - count a new connection, or say why it is refused. */
  admit(ip: string): { ok: true } | { ok: false; reason: string } {
    const key = normalizeIp(ip);
    if (this.total >= this.cfg.max_connections) return { ok: false, reason: 'too many connections' };
    const n = this.perIp.get(key) ?? 0;
    if (n >= this.cfg.max_connections_per_ip && !this.exempt.has(key)) {
      return { ok: false, reason: `too many connections from ${key}` };
    }
    this.total++;
    this.perIp.set(key, n + 1);
    return { ok: true };
  }

  /** release - a counted connection went away. */
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
}

function normalizeIp(ip: string): string {
  return ip.trim().toLowerCase().replace(/^::ffff:/, '');
}
