// The PostgreSQL schema of queued's postgres backend, versioned: MIGRATIONS is an ordered list,
// fmail_schema_version has one row per migration applied. `fmail db migrate` applies the missing
// ones (in one transaction, under an advisory lock, so two at once do not collide); queued on
// start refuses a schema older than SCHEMA_VERSION instead of failing on its first query.

import type pg from 'pg';

import { SERVER_TABLE_SQL } from './server-directory.js';

export interface Migration {
  version: number;
  about: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    about: 'queue messages: bytes, state, lease, deferral',
    sql: `
CREATE TABLE fmail_queue_message (
  qid         text PRIMARY KEY,
  queue       text NOT NULL,
  -- FIFO order within a queue (qids are only roughly time-ordered across hosts).
  seq         bigserial NOT NULL,
  data        bytea NOT NULL,
  size        integer NOT NULL,
  state       text NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'leased', 'deferred')),
  queued_at   timestamptz NOT NULL DEFAULT now(),
  -- deferred: the next attempt; kept afterwards for fmail queue list.
  not_before  timestamptz,
  attempts    integer NOT NULL DEFAULT 0,
  reason      text NOT NULL DEFAULT '',
  -- leased: INSTANCE/CONNECTION of the popper, and when the lease ends unless renewed.
  lease_owner text,
  lease_until timestamptz
);
CREATE INDEX fmail_queue_message_ready ON fmail_queue_message (queue, seq) WHERE state = 'ready';
CREATE INDEX fmail_queue_message_deferred ON fmail_queue_message (not_before) WHERE state = 'deferred';
CREATE INDEX fmail_queue_message_leased ON fmail_queue_message (lease_until) WHERE state = 'leased';
`,
  },
  {
    version: 2,
    about: 'server directory: which servers run on which host (fmail status)',
    sql: SERVER_TABLE_SQL,
  },
];

/** The schema version this code needs (the last migration). */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The NOTIFY channel: payload = a queue name that gained ready messages. */
export const NOTIFY_CHANNEL = 'fmail_queue';

// Any constant: serializes concurrent migrations of one database.
const MIGRATE_LOCK = 0x666d6169;

type Queryable = Pick<pg.Client, 'query'>;

/** schemaVersion - the version of the schema in the database (0: none yet). */
export async function schemaVersion(db: Queryable): Promise<number> {
  const t = await db.query<{ t: string | null }>(`SELECT to_regclass('fmail_schema_version') AS t`);
  if (!t.rows[0]?.t) return 0;
  const r = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM fmail_schema_version');
  return r.rows[0]?.v ?? 0;
}

/** migrate - apply the missing migrations; returns the versions applied (none: up to date). */
export async function migrate(db: Queryable): Promise<{ from: number; applied: number[] }> {
  await db.query('BEGIN');
  try {
    await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK]);
    await db.query(`CREATE TABLE IF NOT EXISTS fmail_schema_version (
      version    integer PRIMARY KEY,
      about      text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const from = await schemaVersion(db);
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await db.query(m.sql);
      await db.query('INSERT INTO fmail_schema_version (version, about) VALUES ($1, $2)', [m.version, m.about]);
      applied.push(m.version);
    }
    await db.query('COMMIT');
    return { from, applied };
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** checkSchema - throw a clear error when the database's schema is older than this code needs. */
export async function checkSchema(db: Queryable): Promise<number> {
  const v = await schemaVersion(db);
  if (v < SCHEMA_VERSION) {
    throw new Error(
      `the PostgreSQL schema is at version ${v}, queued needs ${SCHEMA_VERSION}: run \`fmail db migrate -c CONFIG\` first`,
    );
  }
  return v;
}
