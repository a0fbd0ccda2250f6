// The server directory: which servers run where, as they announce themselves (`announce`), so
// `fmail status` on any host can show every host's servers. queued keeps it because every host
// already reaches queued; with the PostgreSQL backend the rows are shared by every instance,
// with the file spool they live in memory (announcements come again every `announce_s`).

import type pg from 'pg';

export interface AnnouncedServer {
  /** The announcing host's configured hostname. */
  host: string;
  server: string;
  /** ROLE=ADDRESS pairs joined with ",", as `fmail start` prints them (wildcard hosts replaced). */
  addresses: string;
  version: string;
  /** Epoch ms. */
  startedAt: number;
  seenAt: number;
}

export interface ServerDirectory {
  announce(s: AnnouncedServer): Promise<void>;
  withdraw(host: string, server: string): Promise<void>;
  list(): Promise<AnnouncedServer[]>;
}

/** Entries not heard from for this long are dropped: a host taken out of service leaves no ghost. */
export const FORGET_AFTER_MS = 86_400_000;

/** MemoryDirectory - the file spool's: one host's queued, entries until a restart. */
export class MemoryDirectory implements ServerDirectory {
  private readonly entries = new Map<string, AnnouncedServer>();

  async announce(s: AnnouncedServer): Promise<void> {
    this.entries.set(`${s.host}\n${s.server}`, s);
  }

  async withdraw(host: string, server: string): Promise<void> {
    this.entries.delete(`${host}\n${server}`);
  }

  async list(): Promise<AnnouncedServer[]> {
    const oldest = Date.now() - FORGET_AFTER_MS;
    for (const [k, s] of this.entries) if (s.seenAt < oldest) this.entries.delete(k);
    return sortEntries([...this.entries.values()]);
  }
}

const TABLE = 'fmail_server';

/** PgDirectory - one row per (host, server) in fmail_server, shared by every queued instance. */
export class PgDirectory implements ServerDirectory {
  constructor(private readonly db: Pick<pg.Pool, 'query'>) {}

  async announce(s: AnnouncedServer): Promise<void> {
    await this.db.query(
      `INSERT INTO ${TABLE} (host, server, addresses, version, started_at, seen_at)
       VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0), now())
       ON CONFLICT (host, server) DO UPDATE SET addresses = EXCLUDED.addresses, version = EXCLUDED.version,
         started_at = EXCLUDED.started_at, seen_at = now()`,
      [s.host, s.server, s.addresses, s.version, s.startedAt],
    );
  }

  async withdraw(host: string, server: string): Promise<void> {
    await this.db.query(`DELETE FROM ${TABLE} WHERE host = $1 AND server = $2`, [host, server]);
  }

  async list(): Promise<AnnouncedServer[]> {
    await this.db.query(`DELETE FROM ${TABLE} WHERE seen_at < now() - make_interval(secs => $1)`, [FORGET_AFTER_MS / 1000]);
    const r = await this.db.query<{ host: string; server: string; addresses: string; version: string; started: string; seen: string }>(
      `SELECT host, server, addresses, version, extract(epoch FROM started_at) * 1000 AS started, extract(epoch FROM seen_at) * 1000 AS seen FROM ${TABLE}`,
    );
    return sortEntries(r.rows.map((x) => ({ host: x.host, server: x.server, addresses: x.addresses, version: x.version, startedAt: Number(x.started), seenAt: Number(x.seen) })));
  }
}

function sortEntries(list: AnnouncedServer[]): AnnouncedServer[] {
  return list.sort((a, b) => (a.host === b.host ? (a.server < b.server ? -1 : 1) : a.host < b.host ? -1 : 1));
}

/** The migration that makes PgDirectory's table (pg-schema.ts). */
export const SERVER_TABLE_SQL = `
CREATE TABLE ${TABLE} (
  host       text NOT NULL,
  server     text NOT NULL,
  addresses  text NOT NULL,
  version    text NOT NULL,
  started_at timestamptz NOT NULL,
  seen_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (host, server)
);
`;

/** withPeerHost - ADDRESSES with wildcard listen hosts (0.0.0.0, ::) replaced by PEER, the host the announcement came from. */
export function withPeerHost(addresses: string, peer: string): string {
  if (!peer || peer === 'unix') return addresses;
  const host = peer.includes(':') ? `[${peer}]` : peer; // IPv6 in brackets
  return addresses
    .split(',')
    .map((pair) => pair.replace(/^([^=]+=(?:socket:\/\/)?)(0\.0\.0\.0|\[::\]|::)(:\d+)$/, `$1${host}$3`))
    .join(',');
}
