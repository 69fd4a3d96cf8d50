import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { openExistingIndex, type Db } from '../index/db';
import { flushJournal } from '../refs/journal';
import { createDriver } from '../storage/factory';

// Commands that read or change the index the server uses (safe while it runs: each change is one short
// transaction under SQLite's write lock). The configuration is the server's: REGISTRY_CONFIG and overrides.

export interface IndexDeps {
  /** Defaults to the server's loader: REGISTRY_CONFIG and REGISTRY_* overrides apply. */
  loadConfig?: () => Config;
}

/**
 * Run `fn` on the configured index, then write the reference records its changes made to storage (as the
 * server does before answering a write), and close it.
 */
export async function withIndex<T>(deps: IndexDeps, fn: (db: Db, config: Config) => Promise<T>): Promise<T> {
  const config = (deps.loadConfig ?? (() => loadConfig()))();
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
