// `fmail db migrate` - create or bring up to date the PostgreSQL schema of queued's postgres
// backend ([queued] postgres_url): the migrations in src/queued/pg-schema.ts that the database
// has not had yet, in one transaction. Safe to run again (and from two hosts at once).

import type { Command } from 'commander';
import pg from 'pg';

import { loadConfig } from '../config/load.js';
import { SCHEMA_VERSION, migrate } from '../queued/pg-schema.js';

export function register(program: Command): void {
  const db = program.command('db').description("the PostgreSQL database of queued's postgres backend");
  db.command('migrate')
    .description('create the schema or apply the migrations it lacks (idempotent)')
    .option('-c, --config <file>', 'configuration file (TOML)')
    .option('--url <url>', 'connection URL instead of [queued] postgres_url')
    .action(async (opts: { config?: string; url?: string }) => {
      const url = opts.url ?? loadConfig(opts.config).queued.postgres_url;
      if (!url) throw new Error('db migrate: no database: set [queued] postgres_url (or --url)');
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const { from, applied } = await migrate(c);
        if (applied.length === 0) process.stdout.write(`schema up to date (version ${Math.max(from, SCHEMA_VERSION)})\n`);
        else process.stdout.write(`schema migrated from version ${from} to ${applied[applied.length - 1]} (applied ${applied.join(', ')})\n`);
      } finally {
        await c.end();
      }
    });
}
