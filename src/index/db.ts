import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { MIGRATIONS } from './migrations';
import { registerRegexp } from './regexp';

export type Db = Database.Database;

/** Open (creating if needed) the index database and bring its schema up to date. */
export function openDatabase(file: string): Db {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL'); // migrations are on disk before the server starts
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  registerRegexp(db);
  // From here a commit does not fsync on the event loop: WalSync makes it durable before the
  // write is acknowledged, so a committed push still survives power loss, not only a crash.
  db.pragma('synchronous = NORMAL');
  return db;
}

/** An index that must exist already (operator commands never create one): a clear error if it cannot be opened. */
export function openExistingIndex(file: string): Db {
  if (file !== ':memory:' && !existsSync(file)) throw new Error(`no index at ${path.resolve(file)} (index.path): has the registry ever run with this configuration?`);
  try {
    return openDatabase(file);
  } catch (err) {
    throw new Error(`cannot open the index ${path.resolve(file)}: ${(err as Error).message}`);
  }
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`index ${db.name} has schema version ${current}, newer than this registry knows (${MIGRATIONS.length})`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
