import type pg from 'pg';
import { MIGRATION_LOCK, WRITE_LOCK } from './locks';
import { SCHEMA_V1 } from './schema-v1';
import { SCHEMA_V2 } from './schema-v2';
import { SCHEMA_V3 } from './schema-v3';

// Versioned migrations of the PostgreSQL index, as SQLite's (src/index/migrations.ts) but numbered on their
// own: version 1 is SQLite's version 10. Never edit a released migration: append one (and its SQLite twin).
// Several replicas may start at once: each takes the same transaction-scoped advisory lock, so one applies
// what is pending and the others, once it commits, find nothing left to do.

export const PG_MIGRATIONS: readonly string[] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];


export interface MigrationResult {
  /** The schema version before and after. */
  from: number;
  to: number;
}

/**
 * Bring the database's schema up to date in one transaction (DDL is transactional here: a failed
 * migration leaves nothing half-applied). A schema newer than `migrations` stops the start.
 */
export async function migrate(pool: pg.Pool, migrations: readonly string[] = PG_MIGRATIONS): Promise<MigrationResult> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
    // And the write lock: DDL racing other replicas' writes (a rolling upgrade) could deadlock with them.
    await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK.toString()]);
    await client
      .query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
          version    integer PRIMARY KEY,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`,
      )
      .catch((err: PgError) => {
        throw new Error(`cannot create the PostgreSQL index's version table: ${err.message}${hint(err)}`);
      });
    const { rows } = await client.query<{ v: number }>('SELECT coalesce(max(version), 0) AS v FROM schema_migrations');
    const from = rows[0]!.v;
    if (from > migrations.length) {
      throw new Error(`the PostgreSQL index has schema version ${from}, newer than this registry knows (${migrations.length})`);
    }
    for (let v = from; v < migrations.length; v++) {
      await client.query(migrations[v]!).catch((err: PgError) => {
        throw new Error(`PostgreSQL index migration ${v + 1} failed: ${err.message}${hint(err)}`);
      });
      await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [v + 1]);
    }
    await client.query('COMMIT');
    return { from, to: Math.max(from, migrations.length) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

type PgError = { code?: string; message?: string };

/** What an operator can do about a migration error (42501, insufficient privilege: a user that owns neither database nor schema). */
function hint(err: PgError): string {
  if (err.code !== '42501') return '';
  return " (the registry's user must own the database, or a superuser must first run CREATE EXTENSION pg_trgm in it and GRANT CREATE ON SCHEMA to that user: docs/development.md)";
}
