import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema';
import { ConfigError } from '../config/errors';
import { connectionOf } from './connection';
import type { IndexDatabase } from './database';
import { openDatabase, type Db } from './db';
import { connectPool } from './postgres/connect';
import { PostgresDatabase } from './postgres/database';
import { migrate } from './postgres/migrations';

// Opening the index the configuration names: SQLite (a file of this process) or PostgreSQL (shared by
// replicas). The SQLite handle is also returned: its WAL sync and the refs journal are SQLite's own.

export interface OpenedIndex {
  database: IndexDatabase;
  /** The raw SQLite handle (driver sqlite only). */
  sqlite?: Db;
}

/** index.postgres: a URL, and a password in at most one other place. */
export function checkIndexConfig(index: Config['index']): void {
  if (index.driver !== 'postgres') return;
  const pg = index.postgres;
  if (!pg.url) throw new ConfigError('index.postgres.url is empty: set it (or REGISTRY_INDEX_POSTGRES_URL) to use index.driver postgres');
  const sources = [pg.password && 'index.postgres.password', pg.passwordFile && 'index.postgres.passwordFile', urlPassword(pg.url) && 'the password in index.postgres.url'];
  if (sources.filter(Boolean).length > 1) throw new ConfigError(`${sources.filter(Boolean).join(' and ')}: set the password in one place only`);
}

function urlPassword(url: string): string {
  try {
    return new URL(url).password;
  } catch {
    return '';
  }
}

/** The URL to connect with: index.postgres.url with the password from its file or key put in. */
export function postgresUrl(pg: Config['index']['postgres']): string {
  let password = pg.password;
  if (pg.passwordFile) {
    try {
      password = readFileSync(pg.passwordFile, 'utf8').split(/\r?\n/)[0]!;
    } catch (err) {
      throw new ConfigError(`index.postgres.passwordFile: cannot read ${pg.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (password === '') throw new ConfigError(`index.postgres.passwordFile: ${pg.passwordFile} holds no password on its first line`);
  }
  if (!password) return pg.url;
  const url = new URL(pg.url);
  url.password = encodeURIComponent(password);
  return url.toString();
}

/**
 * Open the index, creating or migrating its schema. PostgreSQL: an unreachable server or refused login
 * stops the start with one line naming host:port; replicas starting together migrate once (migrations.ts).
 */
export async function openIndex(index: Config['index'], onIdleError?: (message: string) => void): Promise<OpenedIndex> {
  if (index.driver === 'sqlite') {
    const sqlite = openDatabase(index.path);
    return { database: connectionOf(sqlite), sqlite };
  }
  checkIndexConfig(index);
  const url = postgresUrl(index.postgres);
  const pool = await connectPool(url, { max: index.postgres.maxConnections, onIdleError });
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return { database: new PostgresDatabase(pool, url) };
}
