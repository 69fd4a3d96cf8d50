import type pg from 'pg';
import type { Config } from '../config/schema';
import { connectionOf } from './connection';
import type { IndexDatabase } from './database';
import { openDatabase, type Db } from './db';
import { connectPool, PostgresStartError, serverOf } from './postgres/connect';
import { PostgresDatabase } from './postgres/database';
import { migrate } from './postgres/migrations';
import { PostgresLeadership } from './postgres/leader';
import { ChangeFeed } from './postgres/change-feed';
import { ReadCache } from './read-cache';
import { NEVER_LEADER, SOLE_LEADER, type Leadership } from './leader';
import { checkIndexConfig, postgresUrl } from './settings';

/** Where the index reports what an operator should know (a lost connection, leadership changes). */
export interface IndexLog {
  info(msg: string): void;
  warn(msg: string): void;
}

// Opening the index the configuration names: SQLite (a file of this process) or PostgreSQL (shared by
// replicas). The SQLite handle is also returned: its WAL sync and the refs journal are SQLite's own.

export interface OpenedIndex {
  database: IndexDatabase;
  /** Whether this process runs the background work. */
  leadership: Leadership;
  /** The raw SQLite handle (driver sqlite only). */
  sqlite?: Db;
}

/**
 * Open the index, creating or migrating its schema (`lead: false`: never take part in leadership). PostgreSQL: an unreachable server or refused login
 * stops the start with one line naming host:port; replicas starting together migrate once (migrations.ts).
 */
export async function openIndex(index: Config['index'], log?: IndexLog, opts: { lead?: boolean } = {}): Promise<OpenedIndex> {
  if (index.driver === 'sqlite') {
    const sqlite = openDatabase(index.path);
    return { database: connectionOf(sqlite), sqlite, leadership: SOLE_LEADER };
  }
  checkIndexConfig(index);
  const url = postgresUrl(index.postgres);
  const pool = await connectPool(url, { max: index.postgres.maxConnections, onIdleError: (message) => log?.warn(message) });
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new PostgresStartError(`the PostgreSQL index at ${serverOf(url)}: ${(err as Error).message}`);
  }
  // Operator commands never lead, the background work is the servers', and read what PostgreSQL holds.
  if (opts.lead === false) return { database: new PostgresDatabase(pool, url), leadership: NEVER_LEADER };
  const quiet = log ?? { info: () => undefined, warn: () => undefined };
  const leadership = new PostgresLeadership(url, quiet);
  await leadership.start();
  return { database: await withReadCache(pool, url, index.postgres.cacheStaleness, quiet), leadership };
}

/** The database, answering cached reads from memory unless `staleMs` is 0 (read-cache.ts). */
async function withReadCache(pool: pg.Pool, url: string, staleMs: number, log: IndexLog): Promise<PostgresDatabase> {
  if (staleMs === 0) return new PostgresDatabase(pool, url);
  const cache: ReadCache = new ReadCache(() => feed.fresh());
  const feed = new ChangeFeed(url, { staleMs, onChange: (repo) => cache.changed(repo), log });
  await feed.start();
  return new PostgresDatabase(pool, url, cache, () => feed.close());
}
