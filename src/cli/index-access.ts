import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { openExistingIndex, type Db } from '../index/db';

// Commands that read or change the index the server uses (safe while it runs: each change is one short
// transaction under SQLite's write lock). The configuration is the server's: REGISTRY_CONFIG and overrides.

export interface IndexDeps {
  /** Defaults to the server's loader: REGISTRY_CONFIG and REGISTRY_* overrides apply. */
  loadConfig?: () => Config;
}

/** Run `fn` on the configured index, closing it afterwards. */
export async function withIndex<T>(deps: IndexDeps, fn: (db: Db, config: Config) => Promise<T>): Promise<T> {
  const config = (deps.loadConfig ?? (() => loadConfig()))();
  const db = openExistingIndex(config.index.path);
  try {
    return await fn(db, config);
  } finally {
    db.close();
  }
}
