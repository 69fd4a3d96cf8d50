import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { connectionOf } from '../index/connection';
import type { IndexDatabase } from '../index/database';
import { openExistingIndex, type Db } from '../index/db';
import { openIndex } from '../index/open';
import { flushJournal } from '../refs/journal';
import { createDriver } from '../storage/factory';

// Commands that read or change the index the server uses (safe while it runs: each change is one short
// transaction under the index's write lock). The configuration is the server's: REGISTRY_CONFIG and overrides.

export interface IndexDeps {
  /** Defaults to the server's loader: REGISTRY_CONFIG and REGISTRY_* overrides apply. */
  loadConfig?: () => Config;
}

/**
 * Run `fn` on the configured index (SQLite or PostgreSQL), then, on SQLite, write the reference records its
 * changes made to storage (as the server does before answering a write), and close it.
 */
export async function withIndex<T>(deps: IndexDeps, fn: (db: IndexDatabase, config: Config) => Promise<T>): Promise<T> {
  const config = (deps.loadConfig ?? (() => loadConfig()))();
  if (config.index.driver === 'postgres') {
    const { database } = await openIndex(config.index, undefined, { lead: false });
    try {
      return await fn(database, config);
    } finally {
      await database.close();
    }
  }
  return withSqliteIndex(deps, '', (db) => fn(connectionOf(db), config), config);
}

/**
 * Commands that work on the SQLite file itself (backup, check of the reference journal): on PostgreSQL they
 * stop with a message saying what to use instead.
 */
export async function withSqliteIndex<T>(deps: IndexDeps, what: string, fn: (db: Db, config: Config) => Promise<T>, loaded?: Config): Promise<T> {
  const config = loaded ?? (deps.loadConfig ?? (() => loadConfig()))();
  requireSqliteIndex(config, what);
  const db = openExistingIndex(config.index.path);
  try {
    const result = await fn(db, config);
    const driver = await createDriver(config);
    try {
      await flushJournal(db, driver);
    } finally {
      await driver.close?.();
    }
    return result;
  } finally {
    db.close();
  }
}

/** Stop a command that works on the SQLite file (the journal, backups) when the index is PostgreSQL. */
export function requireSqliteIndex(config: Config, what: string): void {
  if (config.index.driver !== 'sqlite') {
    throw new Error(`${what} is for the SQLite index; with index.driver postgres, use PostgreSQL's own tools (pg_dump, replication): docs/replicas.md`);
  }
}
